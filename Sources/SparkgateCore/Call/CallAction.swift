/// What `CallStateMachine` asks the I/O layer to do, in order.
///
/// Cases whose payload is large are `indirect`: an enum is as large as its largest case, and actions are
/// built and moved many times per call.
public enum CallAction<Metadata, Message> {
    /// Verify this bearer token and answer with `authenticated`, `authenticationFailed` or `unknownKey`.
    case authenticate(Substring)
    /// Fetch the key set again, then answer with `keysRefreshed`.
    case refreshKeys
    /// Fire `deadlineExpired` after this long.
    case startDeadline(Duration)
    /// Take whole messages out of the request reader (answer each with `requestPrefix`/`requestMessage`,
    /// then `requestsDrained`).
    case readRequests
    /// The same for the response reader; `envelopes` says whether each message's envelope is read
    /// (result counting, id rewriting, config redaction, interrupted ids) or passes through unread.
    case readResponses(envelopes: Bool)
    /// Give the client back flow-control window: always on the connection, and on the stream while the
    /// client may still send on it.
    case returnRequestCredit(bytes: Int, stream: Bool)
    /// Give the backend back stream window.
    case returnResponseCredit(bytes: Int)
    /// Record the call in the session ledger, and answer with `admissionDecided`.
    indirect case admit(AdmissionPlan)
    /// Charge a session's AddArtifacts upload bytes against `limit`; answer with `artifactsCharged`.
    indirect case chargeArtifacts(SessionKey, bytes: Int, limit: Int)
    /// Charge an operation's Arrow result bytes and rows; answer with `resultsCharged`.
    indirect case chargeResults(OperationKey, bytes: Int, rows: Int64)
    /// Make the call reachable from outside (operation limits, operator kills, the end of a drain).
    indirect case register(SessionKey, OperationKey?)
    /// Look up why Sparkgate ended this operation, if it did lately (answer with `operationEndRecalled`): a
    /// ReattachExecute to it is told that, not Spark's generic error.
    indirect case recallOperationEnd(OperationKey)
    /// Read which of a backend's endpoints are unhealthy now (answer with `backendHealthRead`).
    indirect case readBackendHealth(backend: String, endpoints: [HostPort])
    /// Get the engine of a launch pool, launched if needed (answer with `engineReady`, `backendSessionLost` or
    /// `backendOpenFailed`).
    indirect case findEngine(EngineRequest)
    /// Record the session's placement where every replica reads it (answer with `placementRecorded`, carrying
    /// what the shared state holds afterwards).
    indirect case recordPlacement(PlacementRecord)
    /// Record the session's placement, unless another replica did first; nobody waits for the answer.
    indirect case claimPlacement(PlacementRecord)
    /// Open the backend stream (answer with `backendOpened` or `backendStreamFailed`).
    indirect case openStream(BackendStreamRequest)
    /// Write this request message to the backend with the rewrite applied (its edits are found in the message's
    /// bytes, from what its envelope located); answer with `requestFlushed`.
    indirect case sendRequest(Message, RequestEnvelope, RequestRewrite, endStream: Bool)
    /// End the request toward the backend (an empty DATA frame with END_STREAM).
    case endRequest
    /// Forward the backend's response head (filtered by `MetadataPolicy`).
    case sendResponseHead(Metadata)
    /// Write this response message to the client with these edits applied (answer with `responseFlushed`).
    case sendResponse(Message, edits: [ByteEdit])
    /// Forward the backend's trailers (filtered), as a trailers-only response when `trailersOnly`.
    case forwardTrailers(Metadata, trailersOnly: Bool)
    /// End the call with Sparkgate's own status, as a trailers-only response when `trailersOnly`.
    indirect case sendStatus(SparkgateError, trailersOnly: Bool)
    /// Answer the call without the backend: a response head (unless one was sent), this message and OK trailers.
    indirect case answerLocally([UInt8], withHead: Bool)
    /// Reset the backend stream (Sparkgate no longer wants it).
    case resetBackend
    /// Tell a client that is still sending to stop: RST_STREAM(NO_ERROR) after the trailers.
    case stopClient
    /// Count a failed connection against an endpoint's health (as a failed check is).
    indirect case recordEndpointFailure(EndpointFailure)
    /// Ask the backend to interrupt an operation Sparkgate is ending.
    indirect case interruptOperation(
        OperationKey, backendSessionID: String, backend: String, placement: SessionPlacement)
    /// End the other streams of an operation and remember why, for its next ReattachExecute.
    indirect case endOperation(OperationKey, SparkgateError)
    /// The operation's result is complete: it stops counting toward concurrency limits.
    indirect case operationCompleted(OperationKey)
    /// The call is over: account for it (ledger, metrics, audit). Always the last action, exactly once.
    indirect case finish(CallOutcome)
}

/// Actions compare whole, payloads included, where the I/O layer's metadata and messages do (tests compare
/// what the machine asked for with what it should have).
extension CallAction: Equatable where Metadata: Equatable, Message: Equatable {}
extension CallAction: Sendable where Metadata: Sendable, Message: Sendable {}

/// Where a call's backend stream goes.
public struct BackendRoute: Sendable, Equatable {
    /// The configured backend (`backends.<name>`).
    public var backend: String
    /// The session id the backend sees: endpoints are chosen by it, so a session stays on one server.
    public var backendSessionID: String

    public init(backend: String, backendSessionID: String) {
        self.backend = backend
        self.backendSessionID = backendSessionID
    }
}

/// What opening a call's backend stream needs: where the call goes and where its session lives.
public struct BackendTarget: Sendable, Equatable {
    public var route: BackendRoute
    public var session: SessionKey
    /// Where the session lives as far as the admission knew, and whether every replica can read it there.
    public var placement: SessionPlacement
    public var placementRecorded: Bool
    /// The team's idle timeout: a placement recorded now lives as long as the session.
    public var sessionIdleSeconds: Double

    public init(
        route: BackendRoute, session: SessionKey, placement: SessionPlacement, placementRecorded: Bool,
        sessionIdleSeconds: Double
    ) {
        self.route = route
        self.session = session
        self.placement = placement
        self.placementRecorded = placementRecorded
        self.sessionIdleSeconds = sessionIdleSeconds
    }
}
