import Crypto
import Foundation
import NIOCore
import NIOPosix
import SparkgateCore
import SparkgateObservability

/// The admin API: health, readiness, metrics, the session list, killing a session, and reload.
public struct AdminRoutes: Sendable {
    let runtime: GatewayRuntime
    let reloader: Reloader
    let metricsText: @Sendable () -> [UInt8]

    public init(runtime: GatewayRuntime, reloader: Reloader, metricsText: @escaping @Sendable () -> [UInt8]) {
        self.runtime = runtime
        self.reloader = reloader
        self.metricsText = metricsText
    }

    public func handle(_ request: AdminRequest) async -> AdminResponse {
        if request.path == "/healthz" {
            return AdminResponse(status: 200, json: "{\"status\":\"ok\"}")
        }
        if let token = runtime.state.adminToken, !Self.matches(request.authorization, token: token) {
            return .error(401, "this admin path needs 'Authorization: Bearer <admin token>' (admin.token_file)")
        }
        switch (request.method, request.path) {
        case ("GET", "/metrics"):
            return AdminResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metricsText())
        case ("GET", "/readyz"):
            return await readiness()
        case ("GET", "/v1/sessions"):
            return sessions(team: request.query["team"], user: request.query["user"])
        case ("POST", "/v1/reload"):
            if let reason = await reloader.reload() {
                return .error(422, "reload refused, running configuration kept: \(reason)")
            }
            return AdminResponse(status: 200, json: "{\"status\":\"reloaded\"}")
        case ("DELETE", let path) where path.hasPrefix("/v1/sessions/"):
            let parts = path.dropFirst("/v1/sessions/".count).split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let user = String(parts[0]).removingPercentEncoding, !user.isEmpty else {
                return .error(400, "use DELETE /v1/sessions/{user}/{session_id}")
            }
            return await kill(user: user, sessionID: String(parts[1]))
        case (_, "/metrics"), (_, "/readyz"), (_, "/v1/sessions"), (_, "/v1/reload"):
            return .error(405, "method \(request.method) is not allowed on \(request.path)")
        default:
            return .error(404, "no such admin path: \(request.path)")
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
        let records = runtime.ledger.withLock { Array($0.sessions.values) }
            .filter { (team == nil || $0.owner.team == team) && (user == nil || $0.owner.user == user) }
            .sorted { ($0.owner.team, $0.owner.user, $0.created) < ($1.owner.team, $1.owner.user, $1.created) }
        var out = "{\"sessions\":["
        for (i, s) in records.enumerated() {
            if i > 0 { out += "," }
            out += "{\"user\":\(JSONText.quoted(s.owner.user)),\"team\":\(JSONText.quoted(s.owner.team))"
            out += ",\"session_id\":\(JSONText.quoted(s.clientSessionID)),\"backend_session_id\":\(JSONText.quoted(s.backendSessionID))"
            out += ",\"backend\":\(JSONText.quoted(s.backend)),\"created\":\(JSONText.quoted(Timestamp.rfc3339(s.created)))"
            out += ",\"last_used\":\(JSONText.quoted(Timestamp.rfc3339(s.lastUsed))),\"active_calls\":\(s.activeCalls)"
            out += ",\"active_operations\":\(s.activeOperations),\"bytes_in\":\(s.bytesIn),\"bytes_out\":\(s.bytesOut)"
            out += ",\"rows_out\":\(s.rowsOut),\"artifact_bytes\":\(s.artifactBytes)"
            if let c = s.clientType { out += ",\"client_type\":\(JSONText.quoted(c))" }
            out += "}"
        }
        out += "],\"count\":\(records.count)}"
        return AdminResponse(status: 200, json: out)
    }

    private func kill(user: String, sessionID: String) async -> AdminResponse {
        let matching = runtime.ledger.withLock { $0.sessions(withClientID: sessionID).filter { $0.owner.user == user } }
        guard let session = matching.first else {
            return .error(404, "no session \(sessionID) of user \(user)")
        }
        runtime.calls.terminate(session: session.key, with: SparkgateError(.cancelled, "an operator ended this session"))
        _ = runtime.ledger.withLock { $0.sessionReleased(session.key) }
        do {
            let (code, message) = try await runtime.releaseOnBackend(session, on: runtime.group.next()).get()
            guard code == .ok else {
                return .error(502, "forgot the session, but the backend refused to release it: \(code.name) \(message)")
            }
        } catch {
            return .error(502, "forgot the session, but could not reach its backend: \(error)")
        }
        return AdminResponse(status: 200, json: "{\"released\":\(JSONText.quoted(sessionID)),\"user\":\(JSONText.quoted(user)),\"team\":\(JSONText.quoted(session.owner.team))}")
    }

    private func readiness() async -> AdminResponse {
        let state = runtime.state
        var reasons: [String] = []
        if let notAfter = state.certificateNotAfter, notAfter < Date().timeIntervalSince1970 {
            reasons.append("the server certificate expired at \(Timestamp.rfc3339(notAfter))")
        }
        var reachable = 0
        var probed: [String] = []
        for backend in state.config.backends.values.sorted(by: { $0.name < $1.name }) {
            for endpoint in backend.endpoints {
                if await Self.probe(endpoint, group: runtime.group) {
                    reachable += 1
                } else {
                    probed.append("\(backend.name) \(endpoint)")
                }
            }
        }
        if reachable == 0 { reasons.append("no backend endpoint is reachable (\(probed.joined(separator: ", ")))") }
        if reasons.isEmpty {
            return AdminResponse(status: 200, json: "{\"status\":\"ready\",\"reachable_endpoints\":\(reachable)}")
        }
        return AdminResponse(status: 503, json: "{\"status\":\"not ready\",\"reasons\":[\(reasons.map(JSONText.quoted).joined(separator: ","))]}")
    }

    /// Whether a TCP connection to `endpoint` opens within a second.
    static func probe(_ endpoint: HostPort, group: any EventLoopGroup) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: group).connectTimeout(.seconds(1)).connect(host: endpoint.host, port: endpoint.port).get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }
}
