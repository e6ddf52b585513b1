import Crypto
import Foundation
import NIOCore
import NIOPosix
import SparkgateCore
import SparkgateEngines
import SparkgateObservability
import SparkgateSharedState
import SparkgateTransport

/// The admin API: health, readiness, metrics, the session list, killing a session, and reload.
public struct AdminRoutes: Sendable {
    let parts: AdminParts
    let reloader: Reloader
    let metricsText: @Sendable () -> [UInt8]

    public init(runtime: GatewayRuntime, reloader: Reloader, metricsText: @escaping @Sendable () -> [UInt8]) {
        self.parts = runtime.adminParts
        self.reloader = reloader
        self.metricsText = metricsText
    }

    public func handle(_ request: AdminRequest) async -> AdminResponse {
        let state = parts.state
        let access = AdminAccess(
            admin: state.config.admin, adminTokenConfigured: state.adminToken != nil,
            readTokenConfigured: state.adminReadToken != nil)
        let presented: AdminAccess.Presented
        if request.authorization == nil {
            presented = .none
        } else if let token = state.adminToken, Self.matches(request.authorization, token: token) {
            presented = .admin
        } else if let token = state.adminReadToken, Self.matches(request.authorization, token: token) {
            presented = .read
        } else {
            presented = .wrong
        }
        if case .refused(let status, let message) = access.decide(
            method: request.method, path: request.path, presented: presented)
        {
            return .error(status, message)
        }
        if request.path == "/healthz" {
            return AdminResponse(status: 200, json: ["status": "ok"])
        }
        let target: AdminURI.Parsed
        switch AdminURI.parse(request.uri) {
        case .success(let parsed): target = parsed
        case .failure(let error): return .error(400, "malformed request target: \(error.message)")
        }
        switch (request.method, target.path) {
        case ("GET", "/metrics"):
            return AdminResponse(
                status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metricsText())
        case ("GET", "/readyz"):
            return await readiness()
        case ("GET", "/v1/sessions"):
            return sessions(team: target.query["team"], user: target.query["user"])
        case ("POST", "/v1/reload"):
            if let reason = await reloader.reload() {
                return .error(422, "reload refused, running configuration kept: \(reason)")
            }
            return AdminResponse(status: 200, json: ["status": "reloaded"])
        case ("DELETE", let path) where path.hasPrefix("/v1/sessions/"):
            // The path is already percent-decoded, so a user name cannot contain '/'; split on the raw target instead.
            let rawPath = request.path
            let parts = rawPath.dropFirst("/v1/sessions/".count).split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, case .success(let user) = AdminURI.parse("/" + parts[0]),
                case .success(let session) = AdminURI.parse("/" + parts[1]),
                user.path.count > 1, session.path.count > 1
            else {
                return .error(400, "use DELETE /v1/sessions/{user}/{session_id}")
            }
            return await kill(
                user: String(user.path.dropFirst()), sessionID: String(session.path.dropFirst()).lowercased())
        case ("GET", "/v1/engines"):
            return await engines()
        case ("DELETE", let path) where path.hasPrefix("/v1/engines/"):
            let id = String(path.dropFirst("/v1/engines/".count))
            guard !id.isEmpty, !id.contains("/") else { return .error(400, "use DELETE /v1/engines/{id}") }
            guard (try? await parts.engines.stop(id).get()) == true else {
                return .error(404, "no engine \(id) (GET /v1/engines lists them)")
            }
            return AdminResponse(status: 200, json: ["stopping": id])
        case (_, "/metrics"), (_, "/readyz"), (_, "/v1/sessions"), (_, "/v1/reload"), (_, "/v1/engines"):
            return .error(405, "method \(request.method) is not allowed on \(target.path)")
        default:
            return .error(404, "no such admin path: \(target.path)")
        }
    }

    /// Constant-time comparison, so the token cannot be guessed byte by byte from response times.
    static func matches(_ header: String?, token: String) -> Bool {
        guard let header, header.lowercased().hasPrefix("bearer ") else { return false }
        let given = SHA256.hash(data: Array(header.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8))
        let expected = SHA256.hash(data: Array(token.utf8))
        return given == expected
    }

    private func sessions(team: String?, user: String?) -> AdminResponse {
        let records = parts.ledger.withLock { Array($0.sessions.values) }
            .filter { (team == nil || $0.owner.team == team) && (user == nil || $0.owner.user == user) }
            .sorted { ($0.owner.team, $0.owner.user, $0.created) < ($1.owner.team, $1.owner.user, $1.created) }
        let now = WallClock.now()
        return AdminResponse(
            status: 200,
            json: SessionList(sessions: records.map { SessionList.Entry($0, now: now) }, count: records.count))
    }

    private func kill(user: String, sessionID: String) async -> AdminResponse {
        let matching = parts.ledger.withLock { $0.sessions(withClientID: sessionID).filter { $0.owner.user == user } }
        var session = matching.first
        if let shared = parts.shared {
            // Another replica may hold the session: find its owner in the shared state, and tell every replica.
            do {
                if session == nil,
                    let owner = try await shared.owners(of: sessionID, user: user, now: WallClock.now()).first
                {
                    var remote = remoteSession(owner, sessionID: sessionID)
                    // Released where it lives, not where this replica would place a new session.
                    let placement = try await shared.placement(of: remote.key)
                    remote.endpoint = placement.endpoint
                    remote.engine = placement.engine
                    session = remote
                }
                if let session { try await shared.publishKill(session.key) }
            } catch {
                parts.metrics.stateError(kind: "redis", operation: "kill")
                if session == nil { return .error(503, "shared state (redis) unreachable: \(error); retry shortly") }
            }
        }
        guard let session else {
            return .error(404, "no session \(sessionID) of user \(user)")
        }
        SharedStateService.killed(session.key, calls: parts.calls, ledger: parts.ledger)
        do {
            let status = try await parts.backendCalls.release(
                session, access: parts.state.backendAccess, on: parts.group.next()
            ).get()
            guard status.code == .ok else {
                return .error(
                    502,
                    "forgot the session, but the backend refused to release it: \(status.code.name) \(status.message)")
            }
        } catch {
            return .error(502, "forgot the session, but could not reach its backend: \(error)")
        }
        return AdminResponse(status: 200, json: ["released": sessionID, "user": user, "team": session.owner.team])
    }

    private func engines() async -> AdminResponse {
        let engines = (try? await parts.engines.list().get()) ?? []
        let now = WallClock.now()
        return AdminResponse(status: 200, json: EngineList(engines: engines.map { EngineList.Entry($0, now: now) }))
    }

    /// A session another replica holds, as this one would have recorded it.
    private func remoteSession(_ owner: UserKey, sessionID: String) -> SessionRecord {
        let state = parts.state
        let backendSessionID =
            state.namespace?.backendID(team: owner.team, user: owner.user, clientSessionID: sessionID) ?? sessionID
        let now = WallClock.now()
        return SessionRecord(
            clientSessionID: sessionID, backendSessionID: backendSessionID, owner: owner,
            backend: state.config.team(owner.team)?.backend ?? state.config.defaultBackend, created: now, lastUsed: now,
            idleSeconds: 0)
    }

    private func readiness() async -> AdminResponse {
        let state = parts.state
        var reasons: [String] = []
        if let notAfter = state.certificateNotAfter, notAfter < Date().timeIntervalSince1970 {
            reasons.append("the server certificate expired at \(Timestamp.rfc3339(notAfter))")
        }
        // A launch pool is ready by construction: its engines start when a call needs one.
        let backends = state.config.backends.values.filter { $0.launch == nil }.sorted { $0.name < $1.name }
        let down = parts.health.backendsWithoutHealthyEndpoint(backends)
        for name in down {
            let endpoints = state.config.backends[name]?.endpoints.map(\.description).joined(separator: ", ") ?? ""
            reasons.append("backend \(name) has no healthy endpoint (\(endpoints))")
        }
        let reachable = backends.reduce(0) { count, b in
            count + b.endpoints.filter { parts.health.isHealthy(b.name, $0) }.count
        }
        if reasons.isEmpty {
            return AdminResponse(
                status: 200, json: Readiness(status: "ready", healthyEndpoints: reachable, reasons: nil))
        }
        return AdminResponse(
            status: 503, json: Readiness(status: "not ready", healthyEndpoints: reachable, reasons: reasons))
    }
}

/// `GET /v1/sessions`.
struct SessionList: Encodable {
    struct Entry: Encodable {
        var user, team, sessionID, backendSessionID, backend, created, lastUsed: String
        var activeCalls, activeOperations: Int
        var bytesIn, bytesOut, rowsOut: Int64
        var artifactBytes: Int
        var clientType: String?
        var endpoint: String?
        var engine: String?
        /// Seconds since the session's first call, and since its last one ended or began.
        var ageSeconds, idleSeconds: Double
        /// When it is released if still in use (`max_session_seconds`), if it has a lifetime.
        var expires: String?

        enum CodingKeys: String, CodingKey {
            case user, team, backend, created
            case sessionID = "session_id", backendSessionID = "backend_session_id", lastUsed = "last_used"
            case activeCalls = "active_calls", activeOperations = "active_operations", bytesIn = "bytes_in", bytesOut =
                "bytes_out"
            case rowsOut = "rows_out", artifactBytes = "artifact_bytes", clientType = "client_type", endpoint, engine
            case ageSeconds = "age_seconds", idleSeconds = "idle_seconds", expires
        }

        init(_ s: SessionRecord, now: Double) {
            ageSeconds = ((now - s.created) * 1000).rounded() / 1000
            idleSeconds = s.activeCalls > 0 || s.activeOperations > 0 ? 0 : ((now - s.lastUsed) * 1000).rounded() / 1000
            expires = s.maxSeconds > 0 ? Timestamp.rfc3339(s.created + s.maxSeconds) : nil
            user = s.owner.user
            team = s.owner.team
            sessionID = s.clientSessionID
            backendSessionID = s.backendSessionID
            backend = s.backend
            created = Timestamp.rfc3339(s.created)
            lastUsed = Timestamp.rfc3339(s.lastUsed)
            activeCalls = s.activeCalls
            activeOperations = s.activeOperations
            bytesIn = s.bytesIn
            bytesOut = s.bytesOut
            rowsOut = s.rowsOut
            artifactBytes = s.artifactBytes
            clientType = s.clientType
            endpoint = s.endpoint?.description
            engine = s.engine
        }
    }

    var sessions: [Entry]
    var count: Int
}

/// `GET /readyz`.
struct Readiness: Encodable {
    var status: String
    var healthyEndpoints: Int
    var reasons: [String]?

    enum CodingKeys: String, CodingKey {
        case status, reasons
        case healthyEndpoints = "healthy_endpoints"
    }
}

/// `GET /v1/engines`.
struct EngineList: Encodable {
    struct Entry: Encodable {
        var id, backend, shareKey, state, started: String
        var pid: Int32?
        var port, sessions: Int
        var idleSeconds: Double
        var warm: Bool

        enum CodingKeys: String, CodingKey {
            case id, backend, state, pid, port, started, sessions, warm
            case shareKey = "share_key", idleSeconds = "idle_seconds"
        }

        init(_ e: EngineRegistry.Engine, now: Double) {
            id = e.id
            backend = e.key.backend
            warm = e.warm
            // A warm engine serves no one yet: "warm", or "warm:<team>" when it was started for one team.
            shareKey = e.warm ? (e.key.team.map { "warm:\($0)" } ?? "warm") : e.key.description
            state = e.state.rawValue
            started = Timestamp.rfc3339(e.started)
            pid = e.pid
            port = e.port
            sessions = e.sessions
            idleSeconds = (e.idleSeconds(now: now) * 10).rounded() / 10
        }
    }

    var engines: [Entry]
}
