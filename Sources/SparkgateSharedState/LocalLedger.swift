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

    /// Hands every later change to `sink`.
    package func mirror(_ sink: @escaping @Sendable ([LedgerChange]) -> Void) {
        mirrored.withLock { $0 = sink }
        ledger.withLock { $0.recordsChanges = true }
        recording.store(true, ordering: .relaxed)
    }
}
