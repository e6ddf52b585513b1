import Foundation

/// The quota limits, named as in the configuration and as the `limit` label of
/// `sparkgate_quota_rejections_total`.
public enum QuotaLimit: String, Sendable, CaseIterable {
    case sessionsPerUser = "max_sessions_per_user"
    case operationsPerSession = "max_concurrent_operations_per_session"
    case operationsPerTeam = "max_concurrent_operations_per_team"
    case requestRate = "requests_per_second"
    case housekeepingRate = "housekeeping_requests_per_second"
    case requestBytes = "max_request_bytes"
    case artifactBytes = "max_artifact_bytes_per_session"
    case resultBytes = "max_result_bytes_per_operation"
    case operationSeconds = "max_operation_seconds"
}

/// A refusal by a quota: which limit, and the message the client sees.
public struct QuotaRefusal: Error, Sendable, Equatable {
    public var limit: QuotaLimit
    public var error: SparkgateError

    public init(_ limit: QuotaLimit, _ message: String, retryAfter: Duration? = nil) {
        self.limit = limit
        self.error = .resourceExhausted(message, retryAfter: retryAfter)
    }

    // The refusals of the admission limits, worded once for the in-memory ledger and the shared state alike.

    public static func requestRate(team: String, quotas q: QuotaSettings, wait: Double) -> QuotaRefusal {
        QuotaRefusal(
            .requestRate,
            "team \(team) allows \(number(q.requestsPerSecond)) requests per second per user (burst \(q.requestBurst)); retry in \(number(wait)) s",
            retryAfter: .milliseconds(Int64((wait * 1000).rounded(.up))))
    }

    public static func housekeepingRate(team: String, quotas q: QuotaSettings, wait: Double) -> QuotaRefusal {
        QuotaRefusal(
            .housekeepingRate,
            "team \(team) allows \(number(q.housekeepingRequestsPerSecond)) reattach, release and interrupt calls per second per user (burst \(q.housekeepingRequestBurst)); retry in \(number(wait)) s",
            retryAfter: .milliseconds(Int64((wait * 1000).rounded(.up))))
    }

    public static func sessionsPerUser(team: String, quotas q: QuotaSettings, user: String, open: Int) -> QuotaRefusal {
        QuotaRefusal(
            .sessionsPerUser,
            "team \(team) allows \(count(q.maxSessionsPerUser, "session")) per user; \(user) has \(open) open. Stop one with spark.stop() or let it go idle"
        )
    }

    public static func operationsPerSession(team: String, quotas q: QuotaSettings, running: Int) -> QuotaRefusal {
        QuotaRefusal(
            .operationsPerSession,
            "team \(team) allows \(count(q.maxConcurrentOperationsPerSession, "concurrent operation")) per session; \(running) \(running == 1 ? "is" : "are") running"
        )
    }

    public static func operationsPerTeam(team: String, quotas q: QuotaSettings, running: Int) -> QuotaRefusal {
        QuotaRefusal(
            .operationsPerTeam,
            "team \(team) allows \(count(q.maxConcurrentOperationsPerTeam, "concurrent operation")); \(running) \(running == 1 ? "is" : "are") running"
        )
    }

    static func number(_ v: Double) -> String {
        v == v.rounded() ? String(Int(v)) : String((v * 100).rounded() / 100)
    }

    /// "1 session", "2 sessions".
    public static func count(_ n: Int, _ noun: String) -> String {
        n == 1 ? "1 \(noun)" : "\(n) \(noun)s"
    }

    public static func bytes(_ n: Int) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var i = 0
        while v >= 1024 && i < units.count - 1 {
            v /= 1024
            i += 1
        }
        return i == 0
            ? "\(n) bytes" : (v == v.rounded() ? "\(Int(v)) \(units[i])" : String(format: "%.1f %@", v, units[i]))
    }
}
