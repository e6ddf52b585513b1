/// The life of one proxied RPC as a value: events in, actions out, time as a parameter.
///
/// A call goes `idle` → `authenticating` (its token is checked) → `awaitingFirstMessage` (the first message
/// decides the session, the rewrite and the admission) → `admitting` (the ledger answers) → `connecting`
/// (the backend stream opens) → `forwarding` (messages flow both ways under flow control) → `closed`. Each
/// phase holds what is valid in it: the caller once known, the plan once decided, the admission once granted.
/// Every event has a defined answer in every phase; the I/O layer only carries the actions out, and every
/// ledger charge is an action answered by an event.
///
/// Flow control: window goes back to the client only as the gateway can take more. Before authentication
/// nothing is returned, so an unauthenticated stream holds at most what its connection window allows;
/// while the first message is read, window is returned for that message's bytes only (its length was
/// checked against the limits at its prefix); once forwarding, `FlowCredit` returns it as the backend takes
/// the bytes. Every byte received is returned at the connection level exactly once, at the latest when
/// the call ends.
public struct CallStateMachine<Metadata, Message> {
    public typealias Event = CallEvent<Metadata, Message>
    public typealias Action = CallAction<Metadata, Message>

    /// Who is calling, once the token verified and the team is configured. Classes, these and the plan: each
    /// phase holds them, and a phase read or changed then costs one reference, not a copy of every string.
    public final class Caller: Sendable {
        public let token: VerifiedToken
        public let team: SparkgateConfig.Team

        init(token: VerifiedToken, team: SparkgateConfig.Team) {
            self.token = token
            self.team = team
        }
    }

    /// What the ledger granted.
    public final class Admission: Sendable {
        /// What the ledger must hear about when the call ends.
        public let call: AdmittedCall
        /// Where the session lives (for Sparkgate's own calls about the operation).
        public let placement: SessionPlacement
        /// The operation's results are counted against a limit.
        public let resultLimited: Bool

        init(call: AdmittedCall, placement: SessionPlacement, resultLimited: Bool) {
            self.call = call
            self.placement = placement
            self.resultLimited = resultLimited
        }
    }

    public enum Phase {
        case idle
        /// The token is being checked; `refreshedKeys` once the key set was fetched again for it.
        case authenticating(token: Substring, refreshedKeys: Bool)
        case awaitingFirstMessage(Caller)
        case admitting(Caller, AdmissionPlan)
        case connecting(Caller, AdmissionPlan, Admission)
        case forwarding(Caller, AdmissionPlan, Admission)
        /// Ended while the ledger was deciding: the outcome waits for its answer, so the ledger hears how a
        /// call it admitted ended.
        case closing(CallOutcome, AdmissionPlan)
        case closed
    }

    /// A phase's name, for logs and tests.
    public enum PhaseName: String, CaseIterable, Sendable {
        case idle, authenticating, awaitingFirstMessage, admitting, connecting, forwarding, closing, closed
    }

    public internal(set) var phase = Phase.idle
    public let policy: CallPolicy
    let startedAt: Double
    let randomUUID: () -> String
    public internal(set) var method = SparkConnectMethod.other("")
    public internal(set) var draining: Bool
    /// The `grpc-timeout` as the client wrote it, for the message when it passes.
    var timeoutText: String?
    /// Who the token says is calling, once verified (also when the team turns out unknown).
    var identity: Identity?
    var audit: CallAudit
    var request: RequestFlow<Message>
    var response: ResponseFlow<Message>
    /// The backend stream's opening, from the admission on (kept after the call ends: a connection that fails
    /// then still counts against its endpoint).
    var opening: BackendOpening?
    /// The ledger was asked to admit the call (a ReattachExecute first asks why its operation ended, if it did).
    var admissionAsked = false

    /// The connection's memo of its last backend session id (none: every call derives its own).
    let backendIDs: SessionNamespace.Memo?

    public init(
        policy: CallPolicy, now: Double, peer: String, draining: Bool = false,
        randomUUID: @escaping () -> String = { UUIDText.random() }, backendIDs: SessionNamespace.Memo? = nil
    ) {
        self.backendIDs = backendIDs
        self.policy = policy
        self.startedAt = now
        self.draining = draining
        self.randomUUID = randomUUID
        self.audit = CallAudit(start: now, peer: peer)
        self.request = RequestFlow(window: policy.streamWindow)
        self.response = ResponseFlow(window: policy.streamWindow)
    }

    public var phaseName: PhaseName {
        switch phase {
        case .idle: .idle
        case .authenticating: .authenticating
        case .awaitingFirstMessage: .awaitingFirstMessage
        case .admitting: .admitting
        case .connecting: .connecting
        case .forwarding: .forwarding
        case .closing: .closing
        case .closed: .closed
        }
    }

    /// The call has ended for the client (`closing` only waits for the ledger's answer to account for it).
    public var isClosed: Bool {
        switch phase {
        case .closing, .closed: true
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting, .forwarding: false
        }
    }

    /// What the first message decided, while the call holds it.
    public var plan: AdmissionPlan? {
        switch phase {
        case .admitting(_, let plan), .connecting(_, let plan, _), .forwarding(_, let plan, _), .closing(_, let plan):
            plan
        case .idle, .authenticating, .awaitingFirstMessage, .closed: nil
        }
    }

    /// The operation this call runs or resumes, once known (and after the call ended: a draining connection
    /// keeps serving the reattaches of operations its calls ran).
    public internal(set) var operation: OperationKey?

    /// Handles one event; the actions to carry out, in order, are appended to `actions`.
    public mutating func handle(_ event: Event, now: Double, into actions: inout [Action]) {
        switch event {
        case .requestHead(let head, let endStream, let buffered):
            receivedHead(head, endStream: endStream, bufferedBytes: buffered, now: now, into: &actions)
        case .requestTrailers(let endStream):
            receivedRequestData(bytes: 0, endStream: endStream, now: now, into: &actions)
        case .requestData(let bytes, let endStream):
            receivedRequestData(bytes: bytes, endStream: endStream, now: now, into: &actions)
        case .requestPrefix(let length, let compressed):
            receivedRequestPrefix(length: length, compressed: compressed, now: now, into: &actions)
        case .requestMessage(let message, let envelope):
            receivedRequestMessage(message, envelope, now: now, into: &actions)
        case .requestsDrained(let partial): drainedRequests(partialBytes: partial, now: now, into: &actions)
        case .requestFlushed(let bytes): flushedRequest(bytes: bytes, into: &actions)
        case .clientGone: clientWentAway(now: now, into: &actions)
        case .authenticated(let token, let team): authenticated(token, team: team, now: now, into: &actions)
        case .authenticationFailed(let failure): authenticationFailed(failure, now: now, into: &actions)
        case .unknownKey(let failure, let mayRefresh):
            unknownKey(failure, mayRefresh: mayRefresh, now: now, into: &actions)
        case .keysRefreshed: keysRefreshed(now: now, into: &actions)
        case .admissionDecided(let result): admissionDecided(result, now: now, into: &actions)
        case .artifactsCharged(let refusal): artifactsCharged(refusal, now: now, into: &actions)
        case .resultsCharged(let refusal): resultsCharged(refusal, now: now, into: &actions)
        case .operationEndRecalled(let reason): operationEndRecalled(reason, now: now, into: &actions)
        case .backendHealthRead(let unhealthy):
            advanceOpening(now: now, into: &actions) { $0.healthRead(unhealthy: unhealthy) }
        case .placementRecorded(let placed):
            advanceOpening(now: now, into: &actions) { $0.placementRecorded(placed) }
        case .engineReady(let engine): advanceOpening(now: now, into: &actions) { $0.engineReady(engine) }
        case .backendOpened: backendOpened(now: now, into: &actions)
        case .backendOpenFailed(let error): backendOpenFailed(error, now: now, into: &actions)
        case .backendStreamFailed(let reason): backendStreamFailed(reason: reason, now: now, into: &actions)
        case .backendSessionLost(let error): backendSessionLost(error, now: now, into: &actions)
        case .responseHeaders(let metadata, let status, let trailers):
            receivedResponseHeaders(metadata, httpStatus: status, status: trailers, now: now, into: &actions)
        case .responseData(let bytes, let endStream):
            receivedResponseData(bytes: bytes, endStream: endStream, now: now, into: &actions)
        case .responsePrefix(let length, let compressed):
            receivedResponsePrefix(length: length, compressed: compressed, now: now, into: &actions)
        case .responseMessage(let message, let envelope):
            receivedResponseMessage(message, envelope, now: now, into: &actions)
        case .responsesDrained(let partial): drainedResponses(partialBytes: partial, now: now, into: &actions)
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
        refuse(
            CallRefusal(
                SparkgateError(
                    .internal, "Sparkgate lost track of this call (\(what) while \(phaseName.rawValue)); retry"),
                reason: "internal"), now: now, into: &actions)
    }
}
