/// The shared-state side of admitting a call: the arguments of `SharedScripts.admit` and the reading of its
/// reply. Pure, so the mapping is tested without Redis.
public struct SharedAdmission: Sendable, Equatable {
    public var keys: [String]
    public var arguments: [String]

    /// What the shared state answered.
    public enum Verdict: Sendable, Equatable {
        /// Admitted and recorded; says whether it recorded a new session or operation, and where the session
        /// lives as far as any replica recorded it.
        case admitted(newSession: Bool, newOperation: Bool, placement: SessionPlacement, placementSeal: String)
        /// A call that creates nothing on a session the shared state does not know: the backend decides.
        case passed
        case refused(QuotaOrPolicyRefusal)
    }

    public init(
        _ call: CallAdmission, quotas q: QuotaSettings, rejectForeignSessions: Bool, now: Double,
        keys names: SharedKeys, holdingSeconds: Double
    ) {
        let session = SessionKey(owner: call.caller, clientSessionID: call.clientSessionID)
        let housekeeping = call.isHousekeeping
        let rate = housekeeping ? q.housekeepingRequestsPerSecond : q.requestsPerSecond
        let burst = housekeeping ? q.housekeepingRequestBurst : q.requestBurst
        let runsOperation = call.method == .executePlan || call.method == .reattachExecute
        let operationID = runsOperation ? call.operationID ?? "" : ""
        let sessionLife = q.sessionIdleSeconds > 0 ? q.sessionIdleSeconds : Self.sessionLifeWithoutIdleLimit
        keys = [
            housekeeping ? names.housekeepingBucket(call.caller) : names.bucket(call.caller),
            names.owners(call.clientSessionID), names.sessions(call.caller), names.operations(session),
            names.teamOperations(call.caller.team),
            names.placement(session),
        ]
        let document = Arguments(
            now: now, rate: rate, burst: burst, rejectForeign: rejectForeignSessions, member: names.member(call.caller),
            session: call.clientSessionID, mayCreate: call.createsSession || call.method == .reattachExecute,
            runsOperation: runsOperation, operation: operationID, maxSessions: q.maxSessionsPerUser,
            maxSessionOperations: q.maxConcurrentOperationsPerSession,
            maxTeamOperations: q.maxConcurrentOperationsPerTeam,
            sessionExpiry: now + max(sessionLife, holdingSeconds), operationExpiry: now + holdingSeconds,
            teamOperationMember: names.teamOperationMember(OperationKey(session: session, operationID: operationID)),
            startsOperation: call.method == .executePlan)
        arguments = [SharedEngineArguments.json(document)]
    }

    /// `SharedScripts.admit`'s ARGV[1], by name (the script reads it with Redis's `cjson`).
    struct Arguments: Encodable, Equatable {
        var now: Double
        /// Requests per second of the caller's bucket (0: no rate limit), and its burst.
        var rate: Double
        var burst: Int
        var rejectForeign: Bool
        /// The caller, as the session's owners list it.
        var member: String
        var session: String
        /// Whether the call may create the session (or resume it, a ReattachExecute) when it is new.
        var mayCreate: Bool
        var runsOperation: Bool
        /// The operation id ('' when none).
        var operation: String
        var maxSessions: Int
        var maxSessionOperations: Int
        var maxTeamOperations: Int
        var sessionExpiry: Double
        var operationExpiry: Double
        var teamOperationMember: String
        /// An ExecutePlan: it never takes over a running operation id.
        var startsOperation: Bool

        enum CodingKeys: String, CodingKey {
            case now, rate, burst, member, session, operation
            case rejectForeign = "reject_foreign", mayCreate = "may_create", runsOperation = "runs_operation"
            case maxSessions = "max_sessions", maxSessionOperations = "max_session_operations"
            case maxTeamOperations = "max_team_operations", sessionExpiry = "session_expiry"
            case operationExpiry = "operation_expiry", teamOperationMember = "team_operation_member"
            case startsOperation = "starts_operation"
        }
    }

    /// A session of a team without `session_idle_seconds` is remembered this long after its last call.
    public static let sessionLifeWithoutIdleLimit = 86_400.0

    /// Reads the script's reply (strings and integers, as text).
    public static func verdict(_ reply: [String], call: CallAdmission, quotas q: QuotaSettings) -> Verdict? {
        let team = call.caller.team
        let count = reply.count > 1 ? Int(reply[1]) : nil
        switch (reply.first, count) {
        case ("ok", _) where reply.count == 6:
            return .admitted(
                newSession: reply[1] == "1", newOperation: reply[2] == "1",
                placement: SessionPlacement(endpoint: reply[3], engine: reply[4]),
                placementSeal: reply[5])
        case ("op_exists", _):
            return .refused(.operationExists(call.operationID ?? ""))
        case ("pass", _):
            return .passed
        case ("foreign", _):
            return .refused(.foreignSession(call.clientSessionID))
        case ("rate", _):
            guard reply.count == 2, let wait = Double(reply[1]) else { return nil }
            let refusal =
                call.isHousekeeping
                ? QuotaRefusal.housekeepingRate(team: team, quotas: q, wait: wait)
                : .requestRate(team: team, quotas: q, wait: wait)
            return .refused(.quota(refusal))
        case ("sessions", let n?):
            return .refused(.quota(.sessionsPerUser(team: team, quotas: q, user: call.caller.user, open: n)))
        case ("session_ops", let n?):
            return .refused(.quota(.operationsPerSession(team: team, quotas: q, running: n)))
        case ("team_ops", let n?):
            return .refused(.quota(.operationsPerTeam(team: team, quotas: q, running: n)))
        default:
            return nil
        }
    }

    /// Exact decimal text of a double, so Lua reads back the very value Swift computed with.
    public static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : "\(value)"
    }
}
