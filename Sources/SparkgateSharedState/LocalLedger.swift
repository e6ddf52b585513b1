import SparkgateCore
import Synchronization

/// This replica's session ledger, which every call on every event loop shares, behind one lock; nothing
/// awaits under it. With `state.kind: redis` the shared records live in Redis (`SharedState`) and this one
/// keeps what only this replica needs. What ends in it is handed to the mirror after the lock is released.
package final class LocalLedger: Sendable {
    private let ledger = Mutex(SessionLedger())
    private let mirrored = Mutex<(@Sendable ([LedgerChange]) -> Void)?>(nil)
    private let recording = Atomic<Bool>(false)

    package init() {}

    package func withLock<R>(_ body: (inout SessionLedger) throws -> R) rethrows -> R {
        guard recording.load(ordering: .relaxed) else { return try ledger.withLock { try body(&$0) } }
        let (result, changes) = try ledger.withLock { ledger in
            let result = try body(&ledger)
            return (result, ledger.takeChanges())
        }
        if !changes.isEmpty, let sink = mirrored.withLock({ $0 }) { sink(changes) }
        return result
    }

    // What a call tells the ledger as it runs, each one step under the lock: callers never hold it themselves.

    /// A call's end (`SessionLedger.callFinished`).
    package func callFinished(_ outcome: CallOutcome, now: Double) {
        withLock { $0.callFinished(outcome, now: now) }
    }

    /// Artifact bytes uploaded to `session`; a refusal once they pass `limit`.
    package func artifactReceived(_ session: SessionKey, bytes: Int, limit: Int) -> QuotaRefusal? {
        withLock { $0.artifactReceived(session, bytes: bytes, limit: limit) }
    }

    /// Result bytes and rows of `operation`; a refusal once they pass its team's limits.
    package func resultReceived(_ operation: OperationKey, bytes: Int, rows: Int64) -> QuotaRefusal? {
        withLock { $0.resultReceived(operation, bytes: bytes, rows: rows) }
    }

    /// `operation` completed (its result arrived whole).
    package func operationEnded(_ operation: OperationKey) {
        withLock { $0.operationsEnded([operation.operationID], in: operation.session) }
    }

    /// Which of `operations` are still running.
    package func running(_ operations: Set<OperationKey>) -> Set<OperationKey> {
        withLock { ledger in operations.filter { ledger.operation($0) != nil } }
    }

    /// Hands every later change to `sink`.
    package func mirror(_ sink: @escaping @Sendable ([LedgerChange]) -> Void) {
        mirrored.withLock { $0 = sink }
        ledger.withLock { $0.recordsChanges = true }
        recording.store(true, ordering: .relaxed)
    }
}
