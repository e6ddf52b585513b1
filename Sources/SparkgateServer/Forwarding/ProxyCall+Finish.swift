import SparkgateCore
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport

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
        let team = outcome.identity.map { state.teamLabel($0.team) } ?? "_unauthenticated"
        let metrics = context.metrics
        outcome.forEachMetric { metrics.record($0, team: team) }
        context.audit.record(outcome.summary)
        frontend.callFinished(self, outcome: outcome)
    }
}
