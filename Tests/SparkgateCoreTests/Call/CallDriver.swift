import SparkgateCore

/// Drives a `CallStateMachine` with metadata as strings and messages as numbers, against a real
/// `SessionLedger` as its accounting, and renders actions as short strings tests can compare.
struct CallDriver {
    typealias Machine = CallStateMachine<String, Int>
    typealias Event = CallEvent<String, Int>
    typealias Action = CallAction<String, Int>

    static let sessionID = "00000000-0000-4000-8000-000000000001"
    static let operationID = "00000000-0000-4000-8000-0000000000aa"

    var machine: Machine
    var ledger = SessionLedger()
    var now = 1000.0
    var log: [String] = []
    var finishes: [CallOutcome] = []
    /// The messages the machine said to send, in the order it said so.
    var sentRequests: [Int] = []
    var sentResponses: [Int] = []
    /// An `admit` action the ledger has not answered yet.
    var admitPending = false

    /// The one endpoint of the backend `local`, unless a test configures its own.
    static let endpoint = HostPort(host: "10.0.0.5", port: 15002)
    static let backends = BackendDirectory(
        backends: ["local": SparkgateConfig.Backend(name: "local", endpoints: [endpoint])], tokens: [:])

    /// Why Sparkgate ended operations, as the call registry answers `recallOperationEnd`.
    var endedOperations: [OperationKey: SparkgateError] = [:]
    /// Endpoints the health view reports unhealthy, as it answers `readBackendHealth`.
    var unhealthy: [HostPort] = []

    init(
        method: String = "Config", maxMessageBytes: Int = 128 << 20, quotas: QuotaSettings = CallDriver.quotas,
        window: Int = 1 << 20, backends: BackendDirectory = CallDriver.backends
    ) {
        let policy = CallPolicy(
            maxMessageBytes: maxMessageBytes, configPolicy: ConfigPolicy(denyKeys: ["*secret*"]),
            namespace: SessionNamespace("6f0f1bd3-5f5a-4b8e-9a51-8a6a3c1e2d47"), rejectForeignSessionIDs: true,
            streamWindow: window, maxBufferedPerStream: 4 * window, backends: backends)
        var counter = 0
        machine = Machine(
            policy: policy, now: now, peer: "127.0.0.1:5000",
            randomUUID: {
                counter += 1
                return String(format: "00000000-0000-4000-8000-%012d", counter)
            })
        self.method = method
        self.quotas = quotas
    }

    let method: String
    let quotas: QuotaSettings

    static var quotas: QuotaSettings {
        var q = QuotaSettings()
        q.requestsPerSecond = 0
        return q
    }

    var team: SparkgateConfig.Team { .init(backend: "local", quotas: quotas) }
    var token: VerifiedToken {
        VerifiedToken(identity: Identity(user: "alice", team: "analytics"), expiresAt: 1e10, tokenID: nil)
    }

    var head: RequestHead {
        var h = RequestHead()
        h.add(name: ":method", value: "POST")
        h.add(name: ":path", value: "/spark.connect.SparkConnectService/\(method)")
        h.add(name: "content-type", value: "application/grpc")
        h.add(name: "authorization", value: "Bearer a.b.c")
        return h
    }

    func envelope(session: String = CallDriver.sessionID, operation: String? = nil) -> RequestEnvelope {
        var e = RequestEnvelope(method: SparkConnectMethod(path: "/spark.connect.SparkConnectService/\(method)")!)
        e.sessionID = session
        e.operationID = operation
        e.reattachable = operation != nil
        e.length = 100
        return e
    }

    /// Feeds an event and returns the actions it produced, rendered (see `perform`).
    @discardableResult
    mutating func send(_ event: Event) -> [String] {
        perform(event).map(Self.render)
    }

    /// Feeds an event and returns the actions it produced, typed. Charges, recalls and health reads are
    /// answered at once, as the executor does, and their answers' actions follow; admissions wait for `admit`.
    @discardableResult
    mutating func perform(_ event: Event) -> [Action] {
        var actions: [Action] = []
        machine.handle(event, now: now, into: &actions)
        var index = 0
        while index < actions.count {
            let action = actions[index]
            index += 1
            log.append(Self.render(action))
            switch action {
            case .admit: admitPending = true
            case .sendRequest(let message, _, _, _): sentRequests.append(message)
            case .sendResponse(let message, _): sentResponses.append(message)
            case .finish(let outcome):
                finishes.append(outcome)
                ledger.callFinished(outcome, now: now)
            case .chargeArtifacts(let session, let bytes, let limit):
                machine.handle(
                    .artifactsCharged(ledger.artifactReceived(session, bytes: bytes, limit: limit)), now: now,
                    into: &actions)
            case .chargeResults(let op, let bytes, let rows):
                machine.handle(
                    .resultsCharged(ledger.resultReceived(op, bytes: bytes, rows: rows)), now: now, into: &actions)
            case .recallOperationEnd(let operation):
                machine.handle(.operationEndRecalled(endedOperations[operation]), now: now, into: &actions)
            case .readBackendHealth(_, let endpoints):
                machine.handle(
                    .backendHealthRead(unhealthy: endpoints.filter(unhealthy.contains)), now: now, into: &actions)
            default: break
            }
        }
        return actions
    }

    /// Runs the ledger's admission for an `admit` action, as the executor does (once per action); without
    /// one, delivers a stray answer the ledger never gave.
    @discardableResult
    mutating func admit() -> [String] {
        guard admitPending, let plan = machine.plan else { return send(.admissionDecided(.success(AdmissionGrant()))) }
        admitPending = false
        let result = ledger.admit(
            plan.admission, quotas: plan.quotas, rejectForeignSessions: plan.rejectForeignSessions, now: now)
        return send(.admissionDecided(result))
    }

    static func render(_ action: Action) -> String {
        switch action {
        case .authenticate(let t): "authenticate(\(t))"
        case .refreshKeys: "refreshKeys"
        case .chargeArtifacts(_, let bytes, _): "chargeArtifacts(\(bytes))"
        case .chargeResults(_, let bytes, _): "chargeResults(\(bytes))"
        case .recordEndpointFailure(let failure): "recordEndpointFailure(\(failure.endpoint))"
        case .startDeadline(let d): "startDeadline(\(d.components.seconds)s)"
        case .readRequests: "readRequests"
        case .readResponses(let envelopes): envelopes ? "readResponses" : "readResponses(unread)"
        case .returnRequestCredit(let b, let s): "returnRequestCredit(\(b)\(s ? "" : ",connection"))"
        case .returnResponseCredit(let b): "returnResponseCredit(\(b))"
        case .admit: "admit"
        case .register: "register"
        case .recallOperationEnd: "recallOperationEnd"
        case .readBackendHealth(let backend, _): "readBackendHealth(\(backend))"
        case .findEngine(let request): "findEngine(\(request.key))"
        case .recordPlacement(let record): "recordPlacement(\(Self.render(record.change)))"
        case .claimPlacement(let record): "claimPlacement(\(Self.render(record.change)))"
        case .openStream(let request): "openStream(\(request.address))"
        case .sendRequest(_, _, _, let end): end ? "sendRequest(end)" : "sendRequest"
        case .endRequest: "endRequest"
        case .sendResponseHead(let h): "sendResponseHead(\(h))"
        case .sendResponse(_, let edits): edits.isEmpty ? "sendResponse" : "sendResponse(edited)"
        case .forwardTrailers(let h, let only): "forwardTrailers(\(h)\(only ? ",only" : ""))"
        case .sendStatus(let e, let only): "sendStatus(\(e.code.name)\(only ? ",only" : ""))"
        case .answerLocally: "answerLocally"
        case .resetBackend: "resetBackend"
        case .stopClient: "stopClient"
        case .interruptOperation: "interruptOperation"
        case .endOperation: "endOperation"
        case .operationCompleted: "operationCompleted"
        case .finish(let o): "finish(\(o.code.name))"
        }
    }

    static func render(_ change: SessionRouting.PlacementChange) -> String {
        switch change {
        case .claim(let p): "claim \(p.endpoint.map(\.description) ?? "")\(p.engine.map { " " + $0 } ?? "")"
        case .move(let p): "move \(p.endpoint.map(\.description) ?? "")"
        }
    }

    // MARK: Bringing a call to each phase

    mutating func toAuthenticating() {
        send(.requestHead(head, endStream: false, bufferedBytes: 0))
    }

    mutating func toAwaitingFirstMessage() {
        toAuthenticating()
        send(.authenticated(token, team: team))
    }

    /// Reads one whole first message and leaves the call waiting for the ledger.
    mutating func toAdmitting(endStream: Bool = false, operation: String? = nil) {
        toAwaitingFirstMessage()
        send(.requestData(bytes: 105, endStream: endStream))
        send(.requestPrefix(length: 100, compressed: false))
        send(.requestMessage(.success(envelope(operation: operation))))
        send(.requestsDrained(partialBytes: 0))
    }

    mutating func toConnecting(endStream: Bool = false, operation: String? = nil) {
        toAdmitting(endStream: endStream, operation: operation)
        admit()
    }

    mutating func toForwarding(endStream: Bool = false, operation: String? = nil) {
        toConnecting(endStream: endStream, operation: operation)
        send(.backendOpened)
    }

    /// An ExecutePlan stream reads its last response, result_complete (20 bytes with its prefix), from the
    /// backend; returns what the machine did with it.
    @discardableResult
    mutating func readResultComplete() -> [String] {
        toForwarding(operation: Self.operationID)
        send(.responseHead("h", httpStatus: "200", trailers: nil))
        var last = ResponseEnvelope()
        last.resultComplete = true
        send(.responseData(bytes: 20, endStream: false))
        send(.responsePrefix(length: 15, compressed: false))
        return send(.responseMessage(last))
    }

    mutating func to(_ phase: Machine.PhaseName) {
        switch phase {
        case .idle: break
        case .authenticating: toAuthenticating()
        case .awaitingFirstMessage: toAwaitingFirstMessage()
        case .admitting: toAdmitting()
        case .connecting: toConnecting()
        case .forwarding: toForwarding()
        case .closing:
            // Ended while the ledger decides: the outcome waits for its answer.
            toAdmitting()
            send(.deadlineExpired)
        case .closed:
            toForwarding()
            send(.deadlineExpired)
        }
        precondition(machine.phaseName == phase, "driver reached \(machine.phaseName), not \(phase)")
        log = []
    }
}

/// The response head and trailers as the I/O layer reports them: both are the backend's HEADERS, and the
/// machine tells which from what it forwarded. Messages are numbered 0 unless a test follows them.
extension CallEvent where Message == Int {
    static func requestMessage(_ read: Result<RequestEnvelope, WireError>) -> CallEvent {
        .requestMessage(0, read)
    }

    static func responseMessage(_ envelope: ResponseEnvelope?) -> CallEvent {
        .responseMessage(0, envelope)
    }

    static func responseHead(_ metadata: Metadata, httpStatus: String?, trailers: BackendStatus?) -> CallEvent {
        .responseHeaders(metadata, httpStatus: httpStatus, status: trailers)
    }

    static func responseTrailers(_ metadata: Metadata, _ status: BackendStatus) -> CallEvent {
        .responseHeaders(metadata, httpStatus: nil, status: status)
    }
}
