import SparkgateCore
import Testing

/// Every event in every phase, with the exact actions it must produce, compared as typed values.
@Suite("Call state machine: every event in every phase")
struct CallStateMachinePhaseTests {
    typealias Phase = CallDriver.Machine.PhaseName
    typealias Action = CallDriver.Action

    /// One expected action. Most are whole typed values; the rest are built from what only the call knows
    /// when the event arrives (its plan, the phase it was in).
    enum Step: Sendable, CustomStringConvertible {
        /// Exactly this action, payload and all.
        case exactly(Action)
        /// Sparkgate's own status, trailers-only.
        case status(SparkgateError)
        /// INTERNAL: the machine lost track of the call, naming the event (`what`) and the phase it came in.
        case lost(String)
        /// The call accounted for with this code: refused by Sparkgate (`refusal`), or as the backend ended it.
        case finish(GRPCStatusCode, CallRefusal?)
        /// The call accounted for as INTERNAL, for the same lost track as `lost`.
        case finishLost(String)
        /// The ledger asked to admit the plan the call now holds.
        case admitPlan
        /// The first request message sent on, rewritten as the call's plan says.
        case sendFirstRequest

        static let readRequests = Step.exactly(.readRequests)
        static let stopClient = Step.exactly(.stopClient)
        static let resetBackend = Step.exactly(.resetBackend)

        var description: String {
            switch self {
            case .exactly(let action): CallDriver.render(action)
            case .status(let error): "sendStatus(\(error))"
            case .lost(let what): "sendStatus(lost track: \(what))"
            case .finish(let code, let refusal):
                "finish(\(code.name), \(refusal.map { "\($0.reason): \($0.error)" } ?? "-"))"
            case .finishLost(let what): "finish(INTERNAL, lost track: \(what))"
            case .admitPlan: "admit(plan)"
            case .sendFirstRequest: "sendRequest(first)"
            }
        }
    }

    static func lostTrack(_ what: String, in phase: Phase) -> CallRefusal {
        CallRefusal(
            SparkgateError(.internal, "Sparkgate lost track of this call (\(what) while \(phase.rawValue)); retry"),
            reason: "internal")
    }

    /// The event is impossible in this phase: the call ends with INTERNAL.
    static func early(_ what: String) -> [Step] { [.lost(what), .stopClient, .finishLost(what)] }
    /// ... while the ledger decides: the outcome waits for its answer.
    static func fromAdmitting(_ what: String) -> [Step] { [.lost(what), .stopClient] }
    /// ... with a backend stream open or opening, which is reset.
    static func withBackend(_ what: String) -> [Step] { [.resetBackend, .lost(what), .stopClient, .finishLost(what)] }

    /// An event the machine loses track over in every open phase (and ignores once closed), but where `except`
    /// says otherwise.
    static func unexpected(_ what: String, except: [Phase: [Step]] = [:]) -> [Phase: [Step]] {
        let everywhere: [Phase: [Step]] = [
            .idle: early(what), .authenticating: early(what), .awaitingFirstMessage: early(what),
            .admitting: fromAdmitting(what), .connecting: withBackend(what), .forwarding: withBackend(what),
            .closing: [], .closed: [],
        ]
        return everywhere.merging(except) { _, exception in exception }
    }

    /// Sparkgate refusing the call itself, in each way the phase calls for.
    static func refused(_ refusal: CallRefusal) -> [Step] {
        [.status(refusal.error), .stopClient, .finish(refusal.error.code, refusal)]
    }
    static func refusedWithBackend(_ refusal: CallRefusal) -> [Step] { [.resetBackend] + refused(refusal) }
    static func refusedAdmitting(_ refusal: CallRefusal) -> [Step] { [.status(refusal.error), .stopClient] }

    static let extraMessage = CallRefusal(
        .invalidArgument("Config takes exactly one request message; this request sent more"), reason: "extra_message")
    static let malformed = CallRefusal(
        .invalidArgument(
            "the Config request is not a valid protobuf message (\(WireError.truncated)); is the client speaking Spark Connect?"
        ), reason: "malformed")
    static let clientCancelled = CallRefusal(
        SparkgateError(.cancelled, "the client cancelled the call"), reason: "client_cancelled")
    static let deadline = CallRefusal(
        SparkgateError(.deadlineExceeded, "the call's deadline (grpc-timeout ) passed"), reason: "deadline")
    static let expired = AuthFailure(.expired, "token expired")
    static let killed = CallRefusal(SparkgateError(.cancelled, "an operator ended this session"), reason: "killed")
    static let backendDown = CallRefusal(.unavailable("down"), reason: "backend_unreachable", metric: .backend)
    static let engineGone = CallRefusal(
        SparkgateError(.failedPrecondition, "engine gone"), reason: "engine_gone", metric: .backend)
    static let refusedStream = CallRefusal(
        .unavailable("backend 'local' refused the stream; retry shortly"), reason: "backend_closed", metric: .backend)
    static let unreachable = CallRefusal(
        .unavailable("backend 'local' (10.0.0.5:15002) is unreachable: connection refused; retry shortly"),
        reason: "backend_unreachable", metric: .backend)

    /// The driver's one backend, as configured: what a stream to it and a failure against it carry.
    static let local = SparkgateConfig.Backend(name: "local", endpoints: [CallDriver.endpoint])
    static let openStream = Step.exactly(
        .openStream(
            BackendStreamRequest(
                backend: "local", address: CallDriver.endpoint, tls: false, token: nil,
                connectTimeoutSeconds: local.connectTimeoutSeconds)))
    static let endpointFailure = Step.exactly(
        .recordEndpointFailure(
            EndpointFailure(
                backend: "local", endpoint: CallDriver.endpoint, reason: "connection refused", settings: local.health)))

    /// `expected[phase]` for each event; a phase missing from a row is a test bug (checked below).
    struct Row: CustomTestStringConvertible, Sendable {
        var name: String
        var event: @Sendable (CallDriver) -> CallDriver.Event
        var expected: [Phase: [Step]]
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(
            name: "request head again", event: { $0.sendHead },
            expected: [
                .idle: [.exactly(.authenticate("a.b.c"))], .authenticating: [], .awaitingFirstMessage: [.readRequests],
                .admitting: [.readRequests], .connecting: [.readRequests], .forwarding: [.readRequests], .closing: [],
                .closed: [],
            ]),
        Row(
            name: "request trailers with END_STREAM", event: { _ in .requestTrailers(endStream: true) },
            expected: [
                .idle: [], .authenticating: [], .awaitingFirstMessage: [.readRequests], .admitting: [.readRequests],
                .connecting: [.readRequests], .forwarding: [.readRequests], .closing: [], .closed: [],
            ]),
        Row(
            name: "request data", event: { _ in .requestData(bytes: 10, endStream: false) },
            expected: [
                .idle: [], .authenticating: [], .awaitingFirstMessage: [.readRequests], .admitting: [.readRequests],
                .connecting: [.readRequests], .forwarding: [.readRequests],
                .closing: [.exactly(.returnRequestCredit(bytes: 10, stream: false))],
                .closed: [.exactly(.returnRequestCredit(bytes: 10, stream: false))],
            ]),
        Row(
            name: "request prefix", event: { _ in .requestPrefix(length: 100, compressed: false) },
            expected: [
                .idle: early("a request message"), .authenticating: early("a request message"),
                .awaitingFirstMessage: [], .admitting: refusedAdmitting(extraMessage),
                .connecting: refusedWithBackend(extraMessage), .forwarding: refusedWithBackend(extraMessage),
                .closing: [], .closed: [],
            ]),
        Row(
            name: "request message", event: { .requestMessage(.success($0.envelope())) },
            expected: [
                .idle: early("a request message"), .authenticating: early("a request message"),
                .awaitingFirstMessage: [.admitPlan], .admitting: refusedAdmitting(extraMessage),
                .connecting: refusedWithBackend(extraMessage), .forwarding: refusedWithBackend(extraMessage),
                .closing: [], .closed: [],
            ]),
        Row(
            name: "malformed request message", event: { _ in .requestMessage(.failure(.truncated)) },
            expected: [
                .idle: early("a request message"), .authenticating: early("a request message"),
                .awaitingFirstMessage: refused(malformed), .admitting: refusedAdmitting(extraMessage),
                .connecting: refusedWithBackend(extraMessage), .forwarding: refusedWithBackend(extraMessage),
                .closing: [], .closed: [],
            ]),
        Row(
            name: "requests drained", event: { _ in .requestsDrained(partialBytes: 0) },
            expected: [
                .idle: early("the end of the request messages"),
                .authenticating: early("the end of the request messages"), .awaitingFirstMessage: [],
                .admitting: [], .connecting: [], .forwarding: [], .closing: [], .closed: [],
            ]),
        Row(
            name: "request flushed", event: { _ in .requestFlushed(bytes: 105) },
            expected: [
                .idle: [], .authenticating: [], .awaitingFirstMessage: [], .admitting: [], .connecting: [],
                .forwarding: [], .closing: [], .closed: [],
            ]),
        Row(
            name: "client gone", event: { _ in .clientGone },
            expected: [
                .idle: [.finish(.cancelled, clientCancelled)], .authenticating: [.finish(.cancelled, clientCancelled)],
                .awaitingFirstMessage: [.finish(.cancelled, clientCancelled)], .admitting: [],
                .connecting: [.resetBackend, .finish(.cancelled, clientCancelled)],
                .forwarding: [.resetBackend, .finish(.cancelled, clientCancelled)], .closing: [], .closed: [],
            ]),
        Row(
            name: "authenticated", event: { .authenticated($0.token, team: $0.team) },
            expected: unexpected("an authentication answer", except: [.authenticating: [.readRequests]])),
        Row(
            name: "authentication failed", event: { _ in .authenticationFailed(expired) },
            expected: unexpected("an authentication answer", except: [.authenticating: refused(.auth(expired))])),
        Row(
            name: "admission decided", event: { _ in .admissionDecided(.success(AdmissionGrant())) },
            expected: unexpected(
                "an admission answer",
                except: [.admitting: [openStream], .closing: [.finish(.deadlineExceeded, deadline)]])),
        Row(
            name: "backend opened", event: { _ in .backendOpened },
            expected: unexpected(
                "a backend stream opening",
                except: [
                    .connecting: [.sendFirstRequest, .readRequests], .closing: [.resetBackend],
                    .closed: [.resetBackend],
                ])),
        Row(
            name: "backend open failed", event: { _ in .backendOpenFailed(.unavailable("down")) },
            expected: unexpected("a backend stream failing to open", except: [.connecting: refused(backendDown)])),
        Row(
            name: "backend session lost",
            event: { _ in .backendSessionLost(SparkgateError(.failedPrecondition, "engine gone")) },
            expected: unexpected("a lost backend session", except: [.connecting: refused(engineGone)])),
        Row(
            name: "response head", event: { _ in .responseHead("h", httpStatus: "200", trailers: nil) },
            expected: unexpected("a response head", except: [.forwarding: [.exactly(.sendResponseHead("h"))]])),
        Row(
            name: "trailers-only response",
            event: { _ in .responseHead("t", httpStatus: "200", trailers: BackendStatus(code: .ok)) },
            expected: unexpected(
                "a response head",
                except: [
                    .forwarding: [.exactly(.forwardTrailers("t", trailersOnly: true)), .stopClient, .finish(.ok, nil)]
                ])),
        Row(
            name: "response data", event: { _ in .responseData(bytes: 50, endStream: false) },
            expected: unexpected("response data", except: [.forwarding: [.exactly(.readResponses(envelopes: true))]])),
        Row(
            name: "response prefix", event: { _ in .responsePrefix(length: 45, compressed: false) },
            expected: unexpected("a response message", except: [.forwarding: []])),
        Row(
            name: "response message", event: { _ in .responseMessage(nil) },
            expected: unexpected("a response message", except: [.forwarding: [.exactly(.sendResponse(0, edits: []))]])),
        Row(
            name: "responses drained", event: { _ in .responsesDrained(partialBytes: 0) },
            expected: unexpected("the end of the response messages", except: [.forwarding: []])),
        Row(
            name: "response trailers", event: { _ in .responseTrailers("t", BackendStatus(code: .ok)) },
            expected: unexpected(
                "a response head",
                except: [
                    .forwarding: [.exactly(.forwardTrailers("t", trailersOnly: true)), .stopClient, .finish(.ok, nil)]
                ])),
        Row(
            name: "response flushed", event: { _ in .responseFlushed(bytes: 10) },
            expected: [
                .idle: [], .authenticating: [], .awaitingFirstMessage: [], .admitting: [], .connecting: [],
                .forwarding: [], .closing: [], .closed: [],
            ]),
        Row(
            name: "backend reset", event: { _ in .backendReset(.refusedStream) },
            expected: unexpected(
                "a backend reset", except: [.connecting: refused(refusedStream), .forwarding: refused(refusedStream)])),
        Row(
            name: "deadline", event: { _ in .deadlineExpired },
            expected: [
                .idle: refused(deadline), .authenticating: refused(deadline), .awaitingFirstMessage: refused(deadline),
                .admitting: refusedAdmitting(deadline), .connecting: refusedWithBackend(deadline),
                .forwarding: refusedWithBackend(deadline), .closing: [], .closed: [],
            ]),
        Row(
            name: "terminated", event: { _ in .terminated(killed.error, reason: killed.reason) },
            expected: [
                .idle: refused(killed), .authenticating: refused(killed), .awaitingFirstMessage: refused(killed),
                .admitting: refusedAdmitting(killed), .connecting: refusedWithBackend(killed),
                .forwarding: refusedWithBackend(killed), .closing: [], .closed: [],
            ]),
        Row(
            name: "unknown key",
            event: { _ in .unknownKey(AuthFailure(.unknownKey, "unknown key id 'k9'"), mayRefresh: true) },
            expected: unexpected("an authentication answer", except: [.authenticating: [.exactly(.refreshKeys)]])),
        Row(
            name: "keys refreshed", event: { _ in .keysRefreshed },
            expected: unexpected("a key refresh", except: [.authenticating: [.exactly(.authenticate("a.b.c"))]])),
        Row(
            name: "artifacts charged, unasked", event: { _ in .artifactsCharged(nil) },
            expected: unexpected(
                "an artifact charge", except: [.forwarding: withBackend("an artifact charge nobody asked for")])),
        Row(
            name: "results charged, unasked", event: { _ in .resultsCharged(nil) },
            expected: unexpected(
                "a result charge", except: [.forwarding: withBackend("a result charge nobody asked for")])),
        Row(
            name: "backend stream failed", event: { _ in .backendStreamFailed(reason: "connection refused") },
            expected: unexpected(
                "a backend stream failing to open",
                except: [.connecting: [endpointFailure] + refused(unreachable), .closed: [endpointFailure]])),
        // The driver's call is a Config: its admission was asked at once, so no recall was pending in `admitting`.
        Row(
            name: "operation end recalled", event: { _ in .operationEndRecalled(nil) },
            expected: unexpected("an operation's end recalled")),
        Row(
            name: "backend health read, unasked", event: { _ in .backendHealthRead(unhealthy: []) },
            expected: unexpected("a backend answer", except: [.connecting: withBackend("an endpoint health reading")])),
        Row(
            name: "placement recorded, unasked", event: { _ in .placementRecorded(SessionPlacement()) },
            expected: unexpected(
                "a backend answer", except: [.connecting: withBackend("a placement nobody asked to record")])),
        Row(
            name: "engine ready, unasked",
            event: { _ in
                .engineReady(ReadyEngine(id: "e1", address: HostPort(host: "127.0.0.1", port: 20001), token: "t"))
            },
            expected: unexpected("a backend answer", except: [.connecting: withBackend("an engine nobody asked for")])),
        Row(
            name: "drain", event: { _ in .drain },
            expected: [
                .idle: [], .authenticating: [], .awaitingFirstMessage: [], .admitting: [], .connecting: [],
                .forwarding: [], .closing: [], .closed: [],
            ]),
    ]

    @Test("the table covers every event kind and every phase")
    func tableIsComplete() {
        for row in Self.rows {
            #expect(Set(row.expected.keys) == Set(Phase.allCases), "\(row.name) misses a phase")
        }
        // Every kind of event has a row (a new CallEvent case cannot pass unnoticed); trailers-only and trailers
        // are further rows of the backend's HEADERS, a malformed message a second row of requestMessage.
        let driver = CallDriver()
        let kinds = Self.rows.map { $0.event(driver).kind }
        #expect(Set(kinds) == Set(CallDriver.Event.Kind.allCases))
        #expect(kinds.count == CallDriver.Event.Kind.allCases.count + 3)
    }

    @Test("each event in each phase produces exactly the expected actions", arguments: rows)
    func everyPair(row: Row) {
        for phase in Phase.allCases {
            var driver = CallDriver()
            driver.to(phase)
            let actions = driver.perform(row.event(driver))
            let expected = row.expected[phase] ?? []
            let matched =
                actions.count == expected.count
                && zip(expected, actions).allSatisfy { Self.matches($0, $1, in: phase, driver: driver) }
            #expect(
                matched,
                "\(row.name) in \(phase): expected \(expected), got \(actions.map(CallDriver.render)) = \(actions)")
            // Whatever happened, the call is accounted for at most once.
            #expect(driver.finishes.count <= 1 + (phase == .closed ? 1 : 0), "\(row.name) in \(phase)")
        }
    }

    /// Whether `action`, produced in `phase` by the call `driver` holds now, is the expected step.
    static func matches(_ step: Step, _ action: Action, in phase: Phase, driver: CallDriver) -> Bool {
        switch step {
        case .exactly(let expected):
            return action == expected
        case .status(let error):
            return action == .sendStatus(error, trailersOnly: true)
        case .lost(let what):
            return action == .sendStatus(lostTrack(what, in: phase).error, trailersOnly: true)
        case .finishLost(let what):
            return matches(.finish(.internal, lostTrack(what, in: phase)), action, in: phase, driver: driver)
        case .finish(let code, let refusal):
            guard case .finish(let outcome) = action else { return false }
            // The call is a Config from its request head on, and alice's once authenticated.
            let known = phase != .idle
            let authenticated = known && phase != .authenticating
            return outcome.code == code && outcome.refusal == refusal && outcome.summary.status == code.name
                && outcome.summary.reason == refusal?.reason
                && outcome.method == (known ? .config : .other(""))
                && outcome.identity == (authenticated ? driver.token.identity : nil)
        case .admitPlan:
            guard let plan = driver.machine.plan else { return false }
            return action == .admit(plan)
        case .sendFirstRequest:
            guard let plan = driver.machine.plan else { return false }
            return action == .sendRequest(0, driver.envelope(), plan.rewrite, endStream: false)
        }
    }

    @Test("drain is recorded in every phase")
    func drainRecorded() {
        for phase in Phase.allCases {
            var driver = CallDriver()
            driver.to(phase)
            driver.send(.drain)
            #expect(driver.machine.draining)
        }
    }
}

extension CallDriver {
    var sendHead: Event { .requestHead(head, endStream: false, bufferedBytes: 0) }
}
