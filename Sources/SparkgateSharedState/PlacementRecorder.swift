import NIOCore
import SparkgateCore

/// Records where sessions live: in this replica's ledger, and with shared state in Redis too, where the
/// first replica to record a session's placement wins and every later call, on any replica, goes there.
package struct PlacementRecorder: Sendable {
    package let ledger: LocalLedger
    package let shared: SharedState?

    package init(ledger: LocalLedger, shared: SharedState?) {
        self.ledger = ledger
        self.shared = shared
    }

    /// Completes on `loop` with the placement every replica now uses for `session`.
    package func record(
        _ session: SessionKey, _ change: SessionRouting.PlacementChange, sessionIdleSeconds: Double,
        on loop: any EventLoop
    ) -> EventLoopFuture<SessionPlacement> {
        guard let shared else {
            ledger.withLock { $0.place(session, change.placement) }
            return loop.makeSucceededFuture(change.placement)
        }
        return shared.place(session, change, sessionIdleSeconds: sessionIdleSeconds, on: loop)
    }
}
