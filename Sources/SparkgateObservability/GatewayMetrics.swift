import CoreMetrics
import Foundation
import Metrics
import SparkgateCore
import Synchronization

/// Sparkgate's metrics. Labels come from closed sets only (method, status code, configured team, limit,
/// reason, backend), never from user or session ids, so the series count stays bounded. Handles are made
/// once per label set and cached, so recording costs a dictionary lookup, not a registry walk.
public final class GatewayMetrics: Sendable {
    /// The `team` label for a team not listed in the configuration (with `allow_unknown_teams`).
    public static let unlistedTeam = "_unlisted"

    private struct RPCKey: Hashable, Sendable {
        var method: String
        var team: String
        var code: Int
    }
    private struct TeamCounters: Sendable {
        var requestBytes: Counter
        var resultBytes: Counter
        var resultRows: Counter
        var activeSessions: Gauge
        var activeOperations: Gauge
    }

    private let rpcs = Mutex<[RPCKey: Counter]>([:])
    private let durations = Mutex<[String: Timer]>([:])
    private let teams = Mutex<[String: TeamCounters]>([:])
    private let authFailures = Mutex<[String: Counter]>([:])
    private let quotaRejections = Mutex<[String: Counter]>([:])
    private let backendUp = Mutex<[String: Gauge]>([:])
    private let backendErrors = Mutex<[String: Counter]>([:])
    private let connections = Mutex<[String: Gauge]>([:])
    private let reloads = Mutex<[String: Counter]>([:])
    private let limitEvents = Mutex<[String: Counter]>([:])
    private let stateErrors = Mutex<[String: Counter]>([:])
    private let backendHealth = Mutex<[String: Gauge]>([:])
    private let engineGauges = Mutex<[String: Gauge]>([:])
    private let engineLaunches = Mutex<[String: Counter]>([:])
    private let enginePortConflicts = Mutex<[String: Counter]>([:])
    private let warmEngineGauges = Mutex<[String: Gauge]>([:])
    private let engineLaunchTimes = Mutex<[String: Timer]>([:])
    private let recordsRejected = Mutex<[String: Counter]>([:])
    private let sessionsExpired = Mutex<[String: Counter]>([:])
    private let firstResponse: Timer
    private let tlsFailures: Counter
    private let buffered: Gauge

    public init(version: String) {
        firstResponse = Timer(
            label: "sparkgate_first_response_seconds", dimensions: [("method", "ExecutePlan")],
            preferredDisplayUnit: .seconds)
        tlsFailures = Counter(label: "sparkgate_tls_handshake_failures_total")
        buffered = Gauge(label: "sparkgate_buffered_bytes")
        buffered.record(0)
        for event in LimitEvent.allCases { limitCounter(event).increment(by: 0) }
        Gauge(label: "sparkgate_build_info", dimensions: [("version", version)]).record(1)
        Gauge(label: "sparkgate_start_time_seconds").record(Date().timeIntervalSince1970)
        for reason in AuthFailure.Reason.allCases { authFailure(reason, count: 0) }
        for state in ["open", "draining"] { connection(state, delta: 0) }
        for result in ["success", "failure"] { _ = reloadCounter(result) }
        for kind in ["record", "message"] { recordRejected(kind, count: 0) }
        for reason in ["idle", "lifetime"] { sessionExpired(reason, count: 0) }
    }

    private static func cached<K: Hashable & Sendable, V: Sendable>(
        _ box: borrowing Mutex<[K: V]>, _ key: K, make: () -> V
    ) -> V {
        box.withLock { table in
            if let v = table[key] { return v }
            let v = make()
            table[key] = v
            return v
        }
    }

    /// Counts a finished RPC and its duration.
    /// Records what a finished call counts toward (`CallOutcome.metrics`).
    public func record(_ metric: CallMetric, team: String) {
        switch metric {
        case .authFailure(let reason): authFailure(reason)
        case .quotaRejection(let limit): quotaRejection(team: team, limit: limit)
        case .backendError(let backend): backendError(backend)
        case .limitEvent(let event): limitEvent(event)
        case .rpc(let method, let code, let seconds):
            rpcFinished(method: method, team: team, code: code, durationSeconds: seconds)
        case .traffic(let request, let result, let rows):
            traffic(team: team, requestBytes: request, resultBytes: result, rows: rows)
        case .firstResponse(let seconds): firstResponse(seconds: seconds)
        }
    }

    public func rpcFinished(method: String, team: String, code: GRPCStatusCode, durationSeconds: Double) {
        Self.cached(rpcs, RPCKey(method: method, team: team, code: code.rawValue)) {
            Counter(
                label: "sparkgate_rpcs_total", dimensions: [("method", method), ("team", team), ("code", code.name)])
        }.increment()
        Self.cached(durations, method) {
            Timer(
                label: "sparkgate_rpc_duration_seconds", dimensions: [("method", method)],
                preferredDisplayUnit: .seconds)
        }.recordNanoseconds(Int64(durationSeconds * 1e9))
    }

    public func firstResponse(seconds: Double) {
        firstResponse.recordNanoseconds(Int64(seconds * 1e9))
    }

    private func team(_ name: String) -> TeamCounters {
        Self.cached(teams, name) {
            let d = [("team", name)]
            return TeamCounters(
                requestBytes: Counter(label: "sparkgate_request_bytes_total", dimensions: d),
                resultBytes: Counter(label: "sparkgate_result_bytes_total", dimensions: d),
                resultRows: Counter(label: "sparkgate_result_rows_total", dimensions: d),
                activeSessions: Gauge(label: "sparkgate_active_sessions", dimensions: d),
                activeOperations: Gauge(label: "sparkgate_active_operations", dimensions: d))
        }
    }

    /// Registers a team's series at zero, so dashboards show configured teams before their first call.
    public func registerTeam(_ name: String) {
        let t = team(name)
        t.requestBytes.increment(by: 0)
        t.resultBytes.increment(by: 0)
        t.resultRows.increment(by: 0)
    }

    public func traffic(team name: String, requestBytes: Int, resultBytes: Int, rows: Int64) {
        let t = team(name)
        if requestBytes > 0 { t.requestBytes.increment(by: Int64(requestBytes)) }
        if resultBytes > 0 { t.resultBytes.increment(by: Int64(resultBytes)) }
        if rows > 0 { t.resultRows.increment(by: rows) }
    }

    public func activity(team name: String, sessions: Int, operations: Int) {
        let t = team(name)
        t.activeSessions.record(sessions)
        t.activeOperations.record(operations)
    }

    public func authFailure(_ reason: AuthFailure.Reason, count: Int64 = 1) {
        Self.cached(authFailures, reason.rawValue) {
            Counter(label: "sparkgate_auth_failures_total", dimensions: [("reason", reason.rawValue)])
        }.increment(by: count)
    }

    public func quotaRejection(team: String, limit: QuotaLimit) {
        Self.cached(quotaRejections, "\(team)\u{0}\(limit.rawValue)") {
            Counter(label: "sparkgate_quota_rejections_total", dimensions: [("team", team), ("limit", limit.rawValue)])
        }.increment()
    }

    public func backend(_ backend: String, endpoint: String, up: Bool) {
        Self.cached(backendUp, "\(backend)\u{0}\(endpoint)") {
            Gauge(label: "sparkgate_backend_up", dimensions: [("backend", backend), ("endpoint", endpoint)])
        }.record(up ? 1 : 0)
    }

    /// When the serving certificate stops being valid (Unix seconds), for an alert well before it does.
    public func certificateExpiry(_ notAfter: Double) {
        Gauge(label: "sparkgate_tls_certificate_expiry_timestamp_seconds").record(notAfter)
    }

    /// A shared-state operation (admit, forget, renew, idle_check, kill, subscribe) that failed.
    public func stateError(kind: String, operation: String) {
        Self.cached(stateErrors, "\(kind)\u{0}\(operation)") {
            Counter(label: "sparkgate_state_errors_total", dimensions: [("kind", kind), ("operation", operation)])
        }.increment()
    }

    /// A record read from the shared state, or a message heard on its channels, that no replica sealed (or a
    /// replay of an old message): nothing was decided from it. `kind` is `record` or `message`.
    public func recordRejected(_ kind: String, count: Int64 = 1) {
        Self.cached(recordsRejected, kind) {
            Counter(label: "sparkgate_state_records_rejected_total", dimensions: [("kind", kind)])
        }.increment(by: count)
    }

    /// A session Sparkgate released on its backend because it was idle (`session_idle_seconds`) or reached
    /// its lifetime (`max_session_seconds`).
    public func sessionExpired(_ reason: String, count: Int64 = 1) {
        Self.cached(sessionsExpired, reason) {
            Counter(label: "sparkgate_sessions_expired_total", dimensions: [("reason", reason)])
        }.increment(by: count)
    }

    /// Whether an endpoint takes new sessions, as its health checks say.
    public func backendHealth(_ backend: String, endpoint: String, healthy: Bool) {
        Self.cached(backendHealth, "\(backend)\u{0}\(endpoint)") {
            Gauge(label: "sparkgate_backend_health", dimensions: [("backend", backend), ("endpoint", endpoint)])
        }.record(healthy ? 1 : 0)
    }

    /// How many engines of `backend` are in each state.
    public func engines(_ backend: String, starting: Int, ready: Int, stopping: Int) {
        for (state, n) in [("starting", starting), ("ready", ready), ("stopping", stopping)] {
            Self.cached(engineGauges, "\(backend)\u{0}\(state)") {
                Gauge(label: "sparkgate_engines", dimensions: [("backend", backend), ("state", state)])
            }.record(n)
        }
    }

    /// A launched engine's port was found held by another process: that launch ended, another port is tried.
    public func enginePortConflict(_ backend: String) {
        Self.cached(enginePortConflicts, backend) {
            Counter(label: "sparkgate_engine_port_conflicts_total", dimensions: [("backend", backend)])
        }.increment()
    }

    /// Engines started ahead with no tenant yet.
    public func warmEngines(_ backend: String, count: Int) {
        Self.cached(warmEngineGauges, backend) {
            Gauge(label: "sparkgate_engines_warm", dimensions: [("backend", backend)])
        }.record(count)
    }

    /// One launch attempt ended: `ready` (after `seconds`), `failed` or `timed_out`.
    public func engineLaunched(_ backend: String, result: String, seconds: Double?) {
        Self.cached(engineLaunches, "\(backend)\u{0}\(result)") {
            Counter(label: "sparkgate_engine_launches_total", dimensions: [("backend", backend), ("result", result)])
        }.increment()
        if let seconds {
            Self.cached(engineLaunchTimes, backend) {
                Timer(
                    label: "sparkgate_engine_launch_seconds", dimensions: [("backend", backend)],
                    preferredDisplayUnit: .seconds)
            }.recordNanoseconds(Int64(seconds * 1e9))
        }
    }

    public func backendError(_ backend: String) {
        Self.cached(backendErrors, backend) {
            Counter(label: "sparkgate_backend_errors_total", dimensions: [("backend", backend)])
        }.increment()
    }

    private func limitCounter(_ event: LimitEvent) -> Counter {
        Self.cached(limitEvents, event.rawValue) {
            Counter(label: "sparkgate_limit_events_total", dimensions: [("limit", event.rawValue)])
        }
    }

    /// A limit closed or refused something (a connection, a stream, a call).
    public func limitEvent(_ event: LimitEvent) {
        limitCounter(event).increment()
    }

    /// Bytes all calls together hold in the gateway now.
    public func bufferedBytes(_ bytes: Int) {
        buffered.record(bytes)
    }

    public func tlsHandshakeFailed() {
        tlsFailures.increment()
    }

    public func connection(_ state: String, delta: Int) {
        let gauge = Self.cached(connections, state) {
            Gauge(label: "sparkgate_connections", dimensions: [("state", state)])
        }
        connectionCounts.withLock { counts in
            counts[state, default: 0] += delta
            gauge.record(counts[state]!)
        }
    }
    private let connectionCounts = Mutex<[String: Int]>([:])

    private func reloadCounter(_ result: String) -> Counter {
        Self.cached(reloads, result) {
            let c = Counter(label: "sparkgate_config_reloads_total", dimensions: [("result", result)])
            c.increment(by: 0)
            return c
        }
    }

    public func configReloaded(success: Bool) {
        reloadCounter(success ? "success" : "failure").increment()
    }
}
