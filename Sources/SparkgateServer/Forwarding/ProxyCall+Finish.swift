import SparkgateCore

extension ProxyCall {
    /// Accounts for the finished call, once: the ledger, the metrics and the audit line.
    func finish(_ outcome: CallOutcome) {
        deadline?.cancel()
        deadline = nil
        if let registration { context.calls.unregister(registration) }
        registration = nil
        unsentRequests.removeAll()
        unsentResponses.removeAll()
        releaseHeldBytes()
        if outcome.admitted != nil {
            let now = frontend.writer.loop.now
            context.ledger.withLock { $0.callFinished(outcome, now: now) }
        }
        let metrics = context.metrics
        let team = outcome.identity.map { state.teamLabel($0.team) } ?? "_unauthenticated"
        switch outcome.refusal?.metric {
        case .authFailure(let reason)?: metrics.authFailure(reason)
        case .quota(let limit)?: metrics.quotaRejection(team: team, limit: limit)
        case .backend?: metrics.backendError(outcome.summary.backend ?? "")
        case .limit(let event)?: metrics.limitEvent(event)
        case nil: break
        }
        metrics.rpcFinished(method: machine.method.label, team: team, code: outcome.code, durationSeconds: outcome.summary.durationSeconds)
        if outcome.identity != nil {
            metrics.traffic(team: team, requestBytes: outcome.summary.requestBytes, resultBytes: outcome.summary.resultBytes, rows: outcome.summary.rows)
        }
        if let seconds = outcome.firstResponseSeconds { metrics.firstResponse(seconds: seconds) }
        context.audit.record(outcome.summary)
        frontend.callFinished(self, outcome: outcome)
    }
}
