/// What a running call charges to the shared accounting as its messages pass: synchronous, so a message
/// that passes a limit is refused before it is forwarded. `SessionLedger` is one; the gateway's is the
/// runtime's ledger behind its lock.
public protocol CallAccounting {
    /// AddArtifacts upload bytes of a session; refuses the message that would pass `limit`.
    mutating func chargeArtifacts(_ session: SessionKey, bytes: Int, limit: Int) -> QuotaRefusal?
    /// Arrow result bytes and rows of an operation; refuses once they pass the operation's limit.
    mutating func chargeResults(_ operation: OperationKey, bytes: Int, rows: Int64) -> QuotaRefusal?
}

extension SessionLedger: CallAccounting {
    public mutating func chargeArtifacts(_ session: SessionKey, bytes: Int, limit: Int) -> QuotaRefusal? {
        artifactReceived(session, bytes: bytes, limit: limit)
    }

    public mutating func chargeResults(_ operation: OperationKey, bytes: Int, rows: Int64) -> QuotaRefusal? {
        resultReceived(operation, bytes: bytes, rows: rows)
    }
}
