/// Sessions, their owners and operations, and the quota accounting over them: a pure value with the clock
/// passed in, so every decision can be replayed in a test.
///
/// Counts are kept incrementally (operations per session and per team, sessions per user) and every path
/// that ends an operation or a session gives its counts back, so a limit never stays exhausted once the
/// work is gone.
public struct SessionLedger: Sendable {
    public private(set) var sessions: [SessionKey: SessionRecord] = [:]
    public private(set) var operations: [OperationKey: OperationRecord] = [:]
    /// Who holds each client session id, to refuse a session id another user is using.
    private var holders: [String: [UserKey]] = [:]
    private var sessionsPerUser: [UserKey: Int] = [:]
    private var sessionsPerTeam: [String: Int] = [:]
    private var operationsPerTeam: [String: Int] = [:]
    private var buckets: [UserKey: TokenBucket] = [:]
    private var housekeepingBuckets: [UserKey: TokenBucket] = [:]
    /// Sessions released through Sparkgate (by their owner, the idle reaper or an operator), and when: a late
    /// ReleaseExecute on one is answered here. Bounded in count and age.
    private var releasedSessions: [SessionKey: Double] = [:]
    /// Sessions released at the end of their lifetime, with what their next call is told (bounded in count
    /// and age like `releasedSessions`).
    private var expiredSessions: [SessionKey: ExpiredSession] = [:]
    package static let expiredSessionSeconds = 3600.0
    static let releasedSessionLimit = 10_000
    package static let releasedSessionSeconds = 600.0
    /// Numbers each operation the ledger starts: a stream that ends after its operation did (released,
    /// interrupted) must not end a later operation that reuses the id.
    private var operationsStarted: UInt64 = 0
    /// When shared state mirrors this ledger: what ended here since the mirror last took the changes.
    public var recordsChanges = false
    private var changes: [LedgerChange] = []

    public init() {}

    /// The operations and sessions that ended since the last call, for the shared state to forget too.
    public mutating func takeChanges() -> [LedgerChange] {
        defer { changes = [] }
        return changes
    }

    /// Decides whether a call may proceed, and records it. Every admitted call must be ended with `callFinished`.
    /// `enforce: false` records a call the shared state already admitted: its limits and ownership are
    /// decided there, over every replica's calls, and this ledger only keeps what this replica holds.
    public mutating func admit(
        _ call: CallAdmission, quotas q: QuotaSettings, rejectForeignSessions: Bool, now: Double, enforce: Bool = true
    ) -> Result<AdmissionGrant, QuotaOrPolicyRefusal> {
        let team = call.caller.team
        if !enforce {
            // Decided by the shared state.
        } else if call.isHousekeeping {
            if q.housekeepingRequestsPerSecond > 0 {
                var bucket =
                    housekeepingBuckets[call.caller] ?? TokenBucket(burst: q.housekeepingRequestBurst, now: now)
                let wait = bucket.take(
                    rate: q.housekeepingRequestsPerSecond, burst: q.housekeepingRequestBurst, now: now)
                housekeepingBuckets[call.caller] = bucket
                if let wait { return .failure(.quota(.housekeepingRate(team: team, quotas: q, wait: wait))) }
            }
        } else if q.requestsPerSecond > 0 {
            var bucket = buckets[call.caller] ?? TokenBucket(burst: q.requestBurst, now: now)
            let wait = bucket.take(rate: q.requestsPerSecond, burst: q.requestBurst, now: now)
            buckets[call.caller] = bucket
            if let wait { return .failure(.quota(.requestRate(team: team, quotas: q, wait: wait))) }
        }

        let id = call.clientSessionID
        let key = SessionKey(owner: call.caller, clientSessionID: id)
        if enforce, rejectForeignSessions, let others = holders[id], others.contains(where: { $0 != call.caller }) {
            return .failure(.foreignSession(id))
        }
        let isNewSession = sessions[key] == nil
        if call.method == .releaseExecute, sessions[key]?.releasing == true {
            return .success(AdmissionGrant(alreadyReleased: true))
        }
        let releasing = call.method == .releaseSession || call.method == .releaseExecute
        // Past its lifetime: refused (the sweep releases it within a second), whatever it asks.
        if !releasing, let session = sessions[key], session.expired(now: now) {
            return .failure(.sessionExpired(id, limit: session.maxSeconds, age: now - session.created))
        }
        if isNewSession {
            if call.method == .releaseExecute, releasedSessions[key] != nil {
                return .success(AdmissionGrant(alreadyReleased: true))
            }
            if !releasing, let expired = expiredSessions[key] {
                return .failure(.sessionExpired(id, limit: expired.limit, age: expired.age))
            }
            // A call that cannot create a session (a release, a status query, a cleanup call on a session the
            // gateway refused) passes to the backend, which decides, and leaves no record here: only an
            // admitted new session may take a slot. A reattach resumes real work, so it is counted.
            guard call.createsSession || call.method == .reattachExecute else { return .success(AdmissionGrant()) }
            let count = sessionsPerUser[call.caller, default: 0]
            if enforce, count >= q.maxSessionsPerUser {
                return .failure(.quota(.sessionsPerUser(team: team, quotas: q, user: call.caller.user, open: count)))
            }
            releasedSessions[key] = nil
        }

        var operationToStart: OperationRecord?
        let opKey = call.operationID.map { OperationKey(session: key, operationID: $0) }
        let runsOperation = call.method == .executePlan || call.method == .reattachExecute
        if let opKey, call.method == .executePlan, operations[opKey] != nil {
            // Spark would answer OPERATION_ALREADY_EXISTS, and the gateway would then lose track of the
            // operation that is really running: a new ExecutePlan never takes over a running id.
            return .failure(.operationExists(opKey.operationID))
        }
        if let opKey, runsOperation, operations[opKey] == nil {
            // A ReattachExecute for an operation this gateway does not hold (it restarted, another replica
            // started it, or the id is made up) counts like a new operation: resuming work is admitted within
            // the same limits, and an id Spark does not know ends at once (`callFinished`).
            let inSession = sessions[key]?.activeOperations ?? 0
            if enforce, inSession >= q.maxConcurrentOperationsPerSession {
                return .failure(.quota(.operationsPerSession(team: team, quotas: q, running: inSession)))
            }
            let inTeam = operationsPerTeam[team, default: 0]
            if enforce, inTeam >= q.maxConcurrentOperationsPerTeam {
                return .failure(.quota(.operationsPerTeam(team: team, quotas: q, running: inTeam)))
            }
            operationToStart = OperationRecord(
                operationID: opKey.operationID, clientSessionID: id, owner: call.caller, started: now,
                reattachable: call.reattachable || call.method == .reattachExecute, tags: call.tags,
                maxResultBytes: q.maxResultBytesPerOperation, maxSeconds: q.maxOperationSeconds,
                instance: operationsStarted + 1)
        }

        // A session's upload quota is this replica's own count, with or without shared state.
        if call.artifactBytes > 0,
            let refusal = Self.artifactRefusal(
                key, uploaded: sessions[key]?.artifactBytes ?? 0, adding: call.artifactBytes,
                limit: q.maxArtifactBytesPerSession)
        {
            return .failure(.quota(refusal))
        }

        // Admitted: record it.
        var session =
            sessions[key]
            ?? SessionRecord(
                clientSessionID: id, backendSessionID: call.backendSessionID, owner: call.caller, backend: call.backend,
                created: now, lastUsed: now, idleSeconds: q.sessionIdleSeconds)
        if isNewSession {
            session.maxSeconds = q.maxSessionSeconds
            sessionsPerUser[call.caller, default: 0] += 1
            sessionsPerTeam[call.caller.team, default: 0] += 1
            holders[id, default: []].append(call.caller)
        }
        session.activeCalls += 1
        session.artifactBytes += call.artifactBytes
        if call.method == .releaseSession { session.releasing = true }
        session.lastUsed = max(session.lastUsed, now)
        session.idleSeconds = q.sessionIdleSeconds
        if let clientType = call.clientType { session.clientType = clientType }
        if let op = operationToStart {
            operationsStarted += 1
            operations[op.key] = op
            session.activeOperations += 1
            operationsPerTeam[team, default: 0] += 1
        }
        sessions[key] = session
        var grant = AdmissionGrant(placement: session.placement)
        if let opKey, runsOperation {
            operations[opKey]!.attachedStreams += 1
            operations[opKey]!.detachedSince = nil
            grant.operationResultLimit = operations[opKey]!.maxResultBytes
            grant.operationInstance = operations[opKey]!.instance
        }
        return .success(grant)
    }

    /// Records where a session lives (its first call's endpoint or engine, or where an operator let it move).
    public mutating func place(_ key: SessionKey, _ placement: SessionPlacement) {
        guard var record = sessions[key], record.placement != placement else { return }
        record.endpoint = placement.endpoint
        record.engine = placement.engine
        sessions[key] = record
    }

    /// How many sessions each launched engine holds.
    public func sessionsPerEngine() -> [String: Int] {
        var counts: [String: Int] = [:]
        for record in sessions.values { if let engine = record.engine { counts[engine, default: 0] += 1 } }
        return counts
    }

    /// An admitted call finished, having moved these bytes and rows.
    public mutating func callEnded(_ key: SessionKey, bytesIn: Int, bytesOut: Int, rowsOut: Int64, now: Double) {
        guard var s = sessions[key] else { return }
        s.activeCalls = max(0, s.activeCalls - 1)
        s.lastUsed = max(s.lastUsed, now)
        s.bytesIn += Int64(bytesIn)
        s.bytesOut += Int64(bytesOut)
        s.rowsOut += rowsOut
        sessions[key] = s
    }

    /// A result stream of an operation ended.
    public mutating func streamEnded(_ op: OperationKey, _ end: StreamEnd, now: Double) {
        guard var record = operations[op] else { return }
        record.attachedStreams = max(0, record.attachedStreams - 1)
        switch end {
        case .completed, .failed:
            endOperation(op)
        case .detached:
            if record.attachedStreams == 0 { record.detachedSince = now }
            operations[op] = record
        }
    }

    /// Counts Arrow results of an operation; refuses once they pass the operation's limit.
    public mutating func resultReceived(_ op: OperationKey, bytes: Int, rows: Int64) -> QuotaRefusal? {
        guard var record = operations[op] else { return nil }
        record.resultBytes += bytes
        record.resultRows += rows
        operations[op] = record
        if record.maxResultBytes > 0 && record.resultBytes > record.maxResultBytes {
            return QuotaRefusal(
                .resultBytes,
                "team \(record.owner.team) allows \(QuotaRefusal.bytes(record.maxResultBytes)) of results per operation; this one passed it and was interrupted. Filter or limit the query, or write its result to storage"
            )
        }
        return nil
    }

    /// Counts AddArtifacts upload bytes of a session; refuses the message that would pass the limit.
    public mutating func artifactReceived(_ key: SessionKey, bytes: Int, limit: Int) -> QuotaRefusal? {
        guard var s = sessions[key] else { return nil }
        if let refusal = Self.artifactRefusal(key, uploaded: s.artifactBytes, adding: bytes, limit: limit) {
            return refusal
        }
        s.artifactBytes += bytes
        sessions[key] = s
        return nil
    }

    static func artifactRefusal(_ key: SessionKey, uploaded: Int, adding bytes: Int, limit: Int) -> QuotaRefusal? {
        guard limit > 0 && uploaded + bytes > limit else { return nil }
        return QuotaRefusal(
            .artifactBytes,
            "team \(key.owner.team) allows \(QuotaRefusal.bytes(limit)) of artifacts per session; this session has uploaded \(QuotaRefusal.bytes(uploaded)) and this upload adds \(QuotaRefusal.bytes(bytes))"
        )
    }

    /// Ends operations for good: released (`release_all`), interrupted, or stopped by Sparkgate.
    public mutating func operationsEnded(_ ids: some Sequence<String>, in session: SessionKey) {
        for id in ids { endOperation(OperationKey(session: session, operationID: id)) }
    }

    /// The client or Sparkgate released the session: forget it and its operations, and remember for a while
    /// that it was released.
    @discardableResult
    public mutating func sessionReleased(_ key: SessionKey, now: Double) -> SessionRecord? {
        sessionForgotten(key, now: now, released: true)
    }

    /// Another replica released this session (its owner, an operator or the idle reaper there): forget it
    /// here too, without telling the shared state again.
    public mutating func sessionReleasedElsewhere(_ key: SessionKey, now: Double) {
        sessionForgotten(key, now: now, released: true, mirror: false)
    }

    /// An operation ended on another replica (its stream completed or failed there, or it was released or
    /// interrupted there): stop counting it here, without telling the shared state again.
    public mutating func operationEndedElsewhere(_ key: OperationKey) {
        endOperation(key, mirror: false)
    }

    /// Forgets a session; `released` says it is gone for every replica (not just idle here). A release is
    /// mirrored even when this replica holds no record of the session: it may have been opened and used on
    /// other replicas only, and they must free its slot.
    @discardableResult
    mutating func sessionForgotten(
        _ key: SessionKey, now: Double, released: Bool, mirror: Bool = true
    ) -> SessionRecord? {
        if recordsChanges && released && mirror { changes.append(.sessionReleased(key)) }
        if released { rememberReleased(key, now: now) }
        guard let s = sessions.removeValue(forKey: key) else { return nil }
        if !released { rememberReleased(key, now: now) }
        for op in operations.keys where op.session == key { endOperation(op, mirror: false) }
        decrement(&sessionsPerUser, key.owner)
        decrement(&sessionsPerTeam, key.owner.team)
        if var list = holders[key.clientSessionID] {
            list.removeAll { $0 == key.owner }
            holders[key.clientSessionID] = list.isEmpty ? nil : list
        }
        return s
    }

    /// The session reached its lifetime at `now`: forgotten and released everywhere, and its next call (under
    /// the same id) is told why for `expiredSessionSeconds`.
    @discardableResult
    public mutating func sessionExpired(_ key: SessionKey, now: Double) -> SessionRecord? {
        guard let record = sessions[key] else { return nil }
        if expiredSessions.count >= Self.releasedSessionLimit,
            let oldest = expiredSessions.min(by: { $0.value.at < $1.value.at })?.key
        {
            expiredSessions[oldest] = nil
        }
        expiredSessions[key] = ExpiredSession(at: now, limit: record.maxSeconds, age: now - record.created)
        return sessionForgotten(key, now: now, released: true)
    }

    /// A late ReleaseExecute on a session Sparkgate released is answered here (bounded in count and age).
    private mutating func rememberReleased(_ key: SessionKey, now: Double) {
        if releasedSessions.count >= Self.releasedSessionLimit, releasedSessions[key] == nil,
            let oldest = releasedSessions.min(by: { $0.value < $1.value })?.key
        {
            releasedSessions[oldest] = nil
        }
        releasedSessions[key] = now
    }

    mutating func endOperation(_ key: OperationKey, mirror: Bool = true) {
        guard operations.removeValue(forKey: key) != nil else { return }
        if recordsChanges && mirror { changes.append(.operationEnded(key)) }
        if var s = sessions[key.session] {
            s.activeOperations = max(0, s.activeOperations - 1)
            sessions[key.session] = s
        }
        decrement(&operationsPerTeam, key.session.owner.team)
    }

    private func decrement<K: Hashable>(_ counts: inout [K: Int], _ key: K) {
        guard let n = counts[key] else { return }
        counts[key] = n <= 1 ? nil : n - 1
    }

    /// Forgets rate buckets that have refilled, so idle users cost no memory.
    mutating func pruneBuckets(now: Double, quotas: (String) -> QuotaSettings) {
        buckets = buckets.filter { user, bucket in
            let q = quotas(user.team)
            return !bucket.isFull(rate: q.requestsPerSecond, burst: q.requestBurst, now: now)
        }
        housekeepingBuckets = housekeepingBuckets.filter { user, bucket in
            let q = quotas(user.team)
            return !bucket.isFull(rate: q.housekeepingRequestsPerSecond, burst: q.housekeepingRequestBurst, now: now)
        }
        releasedSessions = releasedSessions.filter { now - $0.value < Self.releasedSessionSeconds }
        expiredSessions = expiredSessions.filter { now - $0.value.at < Self.expiredSessionSeconds }
    }

    public func session(_ key: SessionKey) -> SessionRecord? { sessions[key] }
    public func operation(_ key: OperationKey) -> OperationRecord? { operations[key] }
    public func activeOperations(team: String) -> Int { operationsPerTeam[team, default: 0] }
    public func sessionCount(of user: UserKey) -> Int { sessionsPerUser[user, default: 0] }
    public func sessionCount(ofTeam team: String) -> Int { sessionsPerTeam[team, default: 0] }
    /// Sessions with this client id, whoever owns them.
    public func sessions(withClientID id: String) -> [SessionRecord] {
        (holders[id] ?? []).compactMap { sessions[SessionKey(owner: $0, clientSessionID: id)] }
    }
}

/// Something that ended in a ledger, which the shared state must forget too.
public enum LedgerChange: Sendable, Equatable {
    case operationEnded(OperationKey)
    case sessionReleased(SessionKey)
}

/// What the ledger grants an admitted call.
public struct AdmissionGrant: Sendable, Equatable {
    /// The result-bytes limit of the operation the call runs (fixed when the operation started), 0 = none.
    public var operationResultLimit = 0
    /// Which start of its operation the call attached to (`OperationRecord.instance`).
    public var operationInstance: UInt64?
    /// A ReleaseExecute for a session Sparkgate already released: done, so answered OK without the backend
    /// (which would answer SESSION_CLOSED to a client's late, asynchronous release).
    public var alreadyReleased = false
    /// Where the session lives, as far as it is known.
    public var placement = SessionPlacement()
    /// Whether `placement` is recorded where every replica reads it (always, with one replica): a placement
    /// known only here (the shared state lost it) is recorded again when the call is routed.
    public var placementRecorded = true

    public init(
        operationResultLimit: Int = 0, alreadyReleased: Bool = false, placement: SessionPlacement = SessionPlacement(),
        placementRecorded: Bool = true
    ) {
        self.operationResultLimit = operationResultLimit
        self.alreadyReleased = alreadyReleased
        self.placement = placement
        self.placementRecorded = placementRecorded
    }
}

/// A call refused by a quota (RESOURCE_EXHAUSTED), by policy (PERMISSION_DENIED), or because the shared
/// state that decides it cannot be reached (UNAVAILABLE).
public enum QuotaOrPolicyRefusal: Error, Sendable, Equatable {
    case quota(QuotaRefusal)
    case policy(SparkgateError)
    case unavailable(SparkgateError)

    public var error: SparkgateError {
        switch self {
        case .quota(let q): q.error
        case .policy(let e), .unavailable(let e): e
        }
    }

    public static func operationExists(_ id: String) -> QuotaOrPolicyRefusal {
        .policy(
            SparkgateError(
                .alreadyExists,
                "operation \(id) is already running in this session; give a new ExecutePlan its own operation_id, or resume this one with ReattachExecute"
            ))
    }

    /// A session that reached `max_session_seconds`, at `age` seconds: its next calls are told so.
    public static func sessionExpired(_ id: String, limit: Double, age: Double) -> QuotaOrPolicyRefusal {
        .policy(
            SparkgateError(
                .failedPrecondition,
                "session \(id) reached its team's max_session_seconds (\(QuotaRefusal.number(limit)) s) at an age of \(QuotaRefusal.number(age.rounded())) s and was released; start a new session (spark.stop(), then a new SparkSession)"
            ))
    }

    public static func foreignSession(_ id: String) -> QuotaOrPolicyRefusal {
        .policy(
            .permissionDenied(
                "session \(id) belongs to another user; start your own session (leave session_id out of the connection string)"
            ))
    }
}

/// What a session released at the end of its lifetime leaves for its next call.
struct ExpiredSession: Sendable, Equatable {
    var at: Double
    var limit: Double
    var age: Double
}
