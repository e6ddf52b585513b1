import SparkgateCore
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport

extension ProxyCall {
    /// Accounts for the finished call, once: the ledger at once (a client that saw the call end may start the
    /// next on another connection), then, once the call's last frames are flushed, the rest.
    func finish(_ outcome: CallOutcome) {
        releaseHeldBytes()
        if outcome.admitted != nil {
            let now = frontend.writer.loop.now
            context.ledger.callFinished(outcome, now: now)
        }
        let loop = frontend.writer.loop
        guard loop.hasUnflushedWrites else { return report(outcome) }
        finishedOutcome = outcome
        loop.afterFlush(self)
    }

    /// Timers, registrations, metrics and the audit line of a finished call: none of it is on the client's way.
    private func report(_ outcome: CallOutcome) {
        frontend.writer.loop.deadlines.remove(self)
        if let registration { context.calls.unregister(registration) }
        registration = nil
        let team = outcome.identity.map { state.teamLabel($0.team) } ?? "_unauthenticated"
        let metrics = context.metrics
        outcome.forEachMetric { metrics.record($0, team: team) }
        context.audit.record(outcome.summary)
        frontend.callFinished(self, outcome: outcome)
    }
}

extension ProxyCall: AfterFlush {
    func runAfterFlush() {
        guard let outcome = finishedOutcome else { return }
        finishedOutcome = nil
        report(outcome)
    }
}
