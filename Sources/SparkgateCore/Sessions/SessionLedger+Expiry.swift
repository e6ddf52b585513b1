/// What the periodic sweep found: work Sparkgate must now stop or release on the backend.
public struct LedgerSweep: Sendable, Equatable {
    /// Idle sessions, already forgotten here: release each on the backend (with shared state, those idle on
    /// every replica).
    public var idleSessions: [SessionRecord] = []
    /// Sessions past `max_session_seconds`, already forgotten here and released for every replica: end their
    /// streams and release each on the backend, however busy.
    public var expiredSessions: [SessionRecord] = []
    /// Operations past `max_operation_seconds`, already ended: interrupt each on the backend and end its streams.
    public var overdueOperations: [OperationRecord] = []
    /// Operations no stream reattached to in time, already ended.
    public var abandonedOperations: [OperationRecord] = []
}

extension SessionLedger {
    /// Ends what has timed out at `now`. An operation still running keeps its session alive.
    public mutating func sweep(now: Double, detachedTimeout: Double, quotas: (String) -> QuotaSettings) -> LedgerSweep {
        var result = LedgerSweep()
        for (key, s) in sessions where s.expired(now: now) {
            if let record = sessionExpired(key, now: now) { result.expiredSessions.append(record) }
        }
        for (key, op) in operations {
            if op.maxSeconds > 0 && now - op.started > op.maxSeconds {
                result.overdueOperations.append(op)
                endOperation(key)
            } else if let since = op.detachedSince, op.attachedStreams == 0, now - since > detachedTimeout {
                result.abandonedOperations.append(op)
                endOperation(key)
            }
        }
        for (key, s) in sessions
        where s.activeCalls == 0 && s.activeOperations == 0 && s.idleSeconds > 0 && now > s.idleDeadline {
            result.idleSessions.append(s)
            // Idle here need not mean idle everywhere: the shared state's owner decides (`SharedState.idle`).
            sessionForgotten(key, now: now, released: false)
        }
        pruneBuckets(now: now, quotas: quotas)
        return result
    }
}
