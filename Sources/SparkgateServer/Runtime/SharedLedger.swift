import SparkgateCore
import Synchronization

/// The session ledger every call on every event loop shares, behind one lock; nothing awaits under it.
final class SharedLedger: Sendable {
    private let ledger = Mutex(SessionLedger())

    func withLock<R>(_ body: (inout SessionLedger) throws -> R) rethrows -> R {
        try ledger.withLock { try body(&$0) }
    }
}

/// A call's charges against the shared ledger (`CallAccounting`), each under the lock.
struct SharedLedgerAccounting: CallAccounting {
    let ledger: SharedLedger

    mutating func chargeArtifacts(_ session: SessionKey, bytes: Int, limit: Int) -> QuotaRefusal? {
        ledger.withLock { $0.chargeArtifacts(session, bytes: bytes, limit: limit) }
    }

    mutating func chargeResults(_ operation: OperationKey, bytes: Int, rows: Int64) -> QuotaRefusal? {
        ledger.withLock { $0.chargeResults(operation, bytes: bytes, rows: rows) }
    }
}
