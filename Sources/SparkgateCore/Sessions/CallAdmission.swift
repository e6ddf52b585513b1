/// What Sparkgate knows of an RPC when it decides whether to let it through.
public struct CallAdmission: Sendable {
    public var caller: UserKey
    public var method: SparkConnectMethod
    public var clientSessionID: String
    public var backendSessionID: String
    public var backend: String
    /// ExecutePlan/ReattachExecute: the operation the call runs or resumes.
    public var operationID: String?
    public var reattachable = false
    public var tags: [String] = []
    public var clientType: String?
    /// AddArtifacts: the upload bytes of the call's first message, charged with its admission.
    public var artifactBytes = 0

    public init(
        caller: UserKey, method: SparkConnectMethod, clientSessionID: String, backendSessionID: String, backend: String
    ) {
        self.caller = caller
        self.method = method
        self.clientSessionID = clientSessionID
        self.backendSessionID = backendSessionID
        self.backend = backend
    }

    /// Calls a client makes on its own to resume or release work. They have a rate bucket of their own, far
    /// above what a client makes: refusing them would only leave results buffered, or work running.
    public var isHousekeeping: Bool {
        switch method {
        case .reattachExecute, .releaseExecute, .releaseSession, .interrupt: true
        default: false
        }
    }

    /// Methods that make the backend create a session when it has none. The others (ReattachExecute,
    /// ReleaseExecute, GetStatus, CloneSession, ReleaseSession) act on a session that must already exist,
    /// so they never count as a new session against the limit.
    public var createsSession: Bool {
        switch method {
        case .executePlan, .analyzePlan, .config, .addArtifacts, .artifactStatus, .interrupt, .fetchErrorDetails,
            .other:
            true
        case .reattachExecute, .releaseExecute, .releaseSession, .getStatus, .cloneSession: false
        }
    }
}

/// How a result stream of an operation ended, as the forwarder saw it.
public enum StreamEnd: Sendable, Equatable {
    /// `result_complete` arrived: the operation is done.
    case completed
    /// The stream ended without `result_complete` and the operation may continue on a later ReattachExecute.
    case detached
    /// The operation failed or was cancelled for good.
    case failed

    /// Classifies the end of an ExecutePlan or ReattachExecute stream.
    ///
    /// A reattachable operation survives its stream: Spark ends streams on purpose (after
    /// `senderMaxStreamDuration`), clients drop them, and another ReattachExecute can take a stream over
    /// (`INVALID_CURSOR.DISCONNECTED`). Only `result_complete` or a real error ends it.
    public static func classify(
        reattachable: Bool, sawResultComplete: Bool, code: GRPCStatusCode, backendStatus: BackendStatus?
    ) -> StreamEnd {
        if sawResultComplete { return .completed }
        guard reattachable else { return .failed }
        switch code {
        case .ok, .cancelled, .unavailable, .deadlineExceeded:
            return .detached
        default:
            return backendStatus.map(BackendVerdict.streamWasTakenOver) == true ? .detached : .failed
        }
    }
}
