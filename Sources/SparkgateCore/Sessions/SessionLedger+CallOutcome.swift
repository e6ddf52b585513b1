extension SessionLedger {
    /// Accounts for a finished call the ledger admitted: its traffic, how its operation's stream ended, and
    /// what it released. Decided from statuses and structured error classes, never from message text.
    public mutating func callFinished(_ outcome: CallOutcome, now: Double) {
        guard let call = outcome.admitted else { return }
        let summary = outcome.summary
        callEnded(
            call.session, bytesIn: summary.requestBytes, bytesOut: summary.responseBytes, rowsOut: summary.rows,
            now: now)
        // A stream of an operation that ended already (released, interrupted) says nothing about a later
        // operation with the same id.
        let sameOperation =
            call.operationInstance.map { instance in call.operation.flatMap { operations[$0]?.instance } == instance }
            ?? true
        if let operation = call.operation, sameOperation, call.method == .executePlan || call.method == .reattachExecute
        {
            if let status = outcome.backendStatus, BackendVerdict.operationIsGone(status) {
                // Spark does not have it (a made-up or abandoned id): nothing is running to count.
                operationsEnded([operation.operationID], in: operation.session)
            } else {
                let end = StreamEnd.classify(
                    reattachable: call.reattachable, sawResultComplete: call.sawResultComplete, code: outcome.code,
                    backendStatus: outcome.backendStatus)
                streamEnded(operation, end, now: now)
            }
        }
        switch call.method {
        case .releaseExecute where outcome.code == .ok && call.releaseAll:
            if let id = call.releasedOperationID { operationsEnded([id], in: call.session) }
        case .interrupt where outcome.code == .ok:
            operationsEnded(call.interruptedIDs, in: call.session)
        case .releaseSession:
            sessionReleased(call.session, now: now)
        default:
            // The backend no longer has the session (released, killed, reaped): keeping its record would hold
            // its slot against the user until it went idle.
            if let status = outcome.backendStatus, BackendVerdict.sessionIsGone(status) {
                sessionReleased(call.session, now: now)
            }
        }
    }
}
