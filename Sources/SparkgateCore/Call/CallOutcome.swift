/// How a call ended, everything its accounting needs: the ledger, the metrics and the audit line.
public struct CallOutcome: Sendable, Equatable {
    /// The audit line (status, reason, bytes, rows, duration and the ids).
    public var summary: CallSummary
    public var code: GRPCStatusCode
    /// The RPC the call was (its metric label).
    public var method = SparkConnectMethod.other("")
    /// The backend's status when the backend ended the call.
    public var backendStatus: BackendStatus?
    /// Set when Sparkgate refused or ended the call itself.
    public var refusal: CallRefusal?
    /// Set when the ledger admitted the call, which must then hear how it ended.
    public var admitted: AdmittedCall?
    /// The identity the call authenticated as.
    public var identity: Identity?
    /// ExecutePlan: seconds from the request to the first response message.
    public var firstResponseSeconds: Double?

    public init(summary: CallSummary, code: GRPCStatusCode) {
        self.summary = summary
        self.code = code
    }
}

/// What the ledger recorded when it admitted a call, and what the call did that the ledger must know.
public struct AdmittedCall: Sendable, Equatable {
    public var session: SessionKey
    public var method: SparkConnectMethod
    public var operation: OperationKey?
    /// The start of the operation the call attached to: its end speaks for that start only.
    public var operationInstance: UInt64?
    public var reattachable: Bool
    public var sawResultComplete = false
    /// ReleaseExecute: whether it released the whole operation, and which.
    public var releaseAll: Bool
    public var releasedOperationID: String?
    /// Interrupt: the operations the backend reports it interrupted.
    public var interruptedIDs: [String] = []

    public init(
        session: SessionKey, method: SparkConnectMethod, operation: OperationKey?, reattachable: Bool, releaseAll: Bool,
        releasedOperationID: String?
    ) {
        self.session = session
        self.method = method
        self.operation = operation
        self.reattachable = reattachable
        self.releaseAll = releaseAll
        self.releasedOperationID = releasedOperationID
    }
}
