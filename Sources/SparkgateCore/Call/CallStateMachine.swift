/// The life of one proxied RPC as a value: events in, actions out, time as a parameter.
///
/// A call goes `idle` → `authenticating` (its token is checked) → `awaitingFirstMessage` (the first message
/// decides the session, the rewrite and the admission) → `admitting` (the ledger answers) → `connecting`
/// (the backend stream opens) → `forwarding` (messages flow both ways under flow control) → `closed`.
/// Every event has a defined answer in every phase; the I/O layer only carries the actions out.
///
/// Flow control: window goes back to the client only as the gateway can take more. Before authentication
/// nothing is returned, so an unauthenticated stream holds at most what its connection window allows;
/// while the first message is read, window is returned for that message's bytes only (its length was
/// checked against the limits at its prefix); once forwarding, `FlowCredit` returns it as the backend takes
/// the bytes. Every byte received is returned at the connection level exactly once, at the latest when
/// the call ends.
public struct CallStateMachine<Metadata> {
    public typealias Event = CallEvent<Metadata>
    public typealias Action = CallAction<Metadata>

    public enum Phase: String, CaseIterable, Sendable {
        case idle, authenticating, awaitingFirstMessage, admitting, connecting, forwarding, closed
    }

    public internal(set) var phase = Phase.idle
    public let policy: CallPolicy
    let startedAt: Double
    let endedReason: (OperationKey) -> SparkgateError?
    let randomUUID: () -> String
    public internal(set) var method = SparkConnectMethod.other("")
    public internal(set) var draining: Bool
    /// The `grpc-timeout` as the client wrote it, for the message when it passes.
    var timeoutText: String?
    /// The audit line as it stands.
    public internal(set) var summary: CallSummary

    var token: VerifiedToken?
    var team: SparkgateConfig.Team?
    /// What the first message decided.
    public internal(set) var plan: AdmissionPlan?
    /// Set once the ledger admitted the call: it then must hear how the call ended.
    var admitted: AdmittedCall?
    var resultLimitActive = false
    /// Where the session lives, as the admission knew it (for Sparkgate's own calls about the operation).
    var placement = SessionPlacement()
    /// An `admit` action the ledger has not answered yet.
    var admissionPending = false
    /// The call ended while the ledger was deciding: `finish` waits for its answer.
    var pendingOutcome: CallOutcome?

    // Request side (client → backend).
    var clientEnded = false
    /// The client ended the request and every whole message of it has been read.
    var requestComplete = false
    var requestMessages = 0
    /// Framed length of the message whose prefix was read last.
    var requestMessageLength = 0
    var firstMessageLength: Int?
    var requestCredit: FlowCredit
    var requestReceived = 0
    /// Window returned to the client so far, at the connection level.
    var requestReturned = 0
    /// A request message read before the backend stream opened (the I/O layer holds its bytes).
    struct HeldRequest {
        var artifactBytes: Int
        var length: Int
        /// Its AddArtifacts bytes were charged (the first message's are, at admission).
        var charged: Bool
    }

    var held: [HeldRequest] = []
    var sentEnd = false

    // Response side (backend → client).
    /// A backend stream is open or opening.
    var backendOpen = false
    var responseStarted = false
    /// The backend ended its stream with DATA, not trailers.
    var backendEndedWithData = false
    var responseMessageLength = 0
    var responseCredit: FlowCredit
    var firstResponseSeconds: Double?
    /// Response messages written toward the client and not yet out of the gateway, oldest first: the
    /// audit line counts what the client received, so results count as they leave.
    var unflushedResponses: [UnflushedResponse] = []
    var unflushedHead = 0

    struct UnflushedResponse {
        var length: Int
        var resultBytes: Int
        var rows: Int64
    }

    public init(
        policy: CallPolicy, now: Double, peer: String, draining: Bool = false,
        endedReason: @escaping (OperationKey) -> SparkgateError? = { _ in nil }, randomUUID: @escaping () -> String = { UUIDText.random() }
    ) {
        self.policy = policy
        self.startedAt = now
        self.draining = draining
        self.endedReason = endedReason
        self.randomUUID = randomUUID
        self.summary = CallSummary(start: now, method: "", peer: peer)
        let window = policy.streamWindow
        self.requestCredit = FlowCredit(highWatermark: window, lowWatermark: window / 4)
        self.responseCredit = FlowCredit(highWatermark: window, lowWatermark: window / 4)
    }

    /// Whether the I/O layer should parse response messages' envelopes (result counting, id rewriting,
    /// config redaction, interrupted ids); other responses pass through unread.
    public var readsResponseEnvelopes: Bool {
        guard let plan else { return false }
        return method.isServerStreaming || !plan.responseRewrite.isIdentity || method == .interrupt
    }

    /// The operation this call runs or resumes, once known.
    public var operation: OperationKey? { plan?.operation }

    /// Handles one event; the actions to carry out, in order, are appended to `actions`.
    public mutating func handle(_ event: Event, now: Double, accounting: inout some CallAccounting, into actions: inout [Action]) {
        switch event {
        case .requestHead(let head, let endStream, let buffered): receivedHead(head, endStream: endStream, bufferedBytes: buffered, now: now, into: &actions)
        case .requestTrailers(let endStream): receivedRequestData(bytes: 0, endStream: endStream, now: now, into: &actions)
        case .requestData(let bytes, let endStream): receivedRequestData(bytes: bytes, endStream: endStream, now: now, into: &actions)
        case .requestPrefix(let length, let compressed): receivedRequestPrefix(length: length, compressed: compressed, now: now, into: &actions)
        case .requestMessage(let envelope): receivedRequestMessage(envelope, now: now, accounting: &accounting, into: &actions)
        case .requestsDrained(let partial): drainedRequests(partialBytes: partial, now: now, into: &actions)
        case .requestFlushed(let bytes): flushedRequest(bytes: bytes, into: &actions)
        case .clientGone: clientWentAway(now: now, into: &actions)
        case .authenticated(let token, let team): authenticated(token, team: team, now: now, into: &actions)
        case .authenticationFailed(let failure): authenticationFailed(failure, now: now, into: &actions)
        case .admissionDecided(let result): admissionDecided(result, now: now, accounting: &accounting, into: &actions)
        case .backendOpened: backendOpened(now: now, accounting: &accounting, into: &actions)
        case .backendOpenFailed(let error): backendOpenFailed(error, now: now, into: &actions)
        case .backendSessionLost(let error): backendSessionLost(error, now: now, into: &actions)
        case .responseHead(let metadata, let status, let trailers): receivedResponseHead(metadata, httpStatus: status, trailers: trailers, now: now, into: &actions)
        case .responseData(let bytes, let endStream): receivedResponseData(bytes: bytes, endStream: endStream, now: now, into: &actions)
        case .responsePrefix(let length, let compressed): receivedResponsePrefix(length: length, compressed: compressed, now: now, into: &actions)
        case .responseMessage(let envelope): receivedResponseMessage(envelope, now: now, accounting: &accounting, into: &actions)
        case .responsesDrained(let partial): drainedResponses(partialBytes: partial, now: now, into: &actions)
        case .responseTrailers(let metadata, let status): receivedResponseTrailers(metadata, status, now: now, into: &actions)
        case .responseFlushed(let bytes): flushedResponse(bytes: bytes, into: &actions)
        case .backendReset(let reset): backendReset(reset, now: now, into: &actions)
        case .deadlineExpired: deadlineExpired(now: now, into: &actions)
        case .terminated(let error, let reason): terminated(error, reason: reason, now: now, into: &actions)
        case .drain: draining = true
        }
    }

    /// An event the I/O layer cannot send in this phase: the call ends with INTERNAL rather than carry on
    /// in a state nobody reasoned about.
    mutating func impossible(_ what: String, now: Double, into actions: inout [Action]) {
        refuse(CallRefusal(SparkgateError(.internal, "Sparkgate lost track of this call (\(what) while \(phase.rawValue)); retry"), reason: "internal"), now: now, into: &actions)
    }
}
