import SparkgateCore
import Testing

/// Every event in every phase, with the exact actions it must produce.
@Suite("Call state machine: every event in every phase")
struct CallStateMachinePhaseTests {
    typealias Phase = CallDriver.Machine.PhaseName

    static let internalFromAdmitting = ["sendStatus(INTERNAL,only)", "stopClient"]  // finish waits for the ledger
    static let internalEarly = ["sendStatus(INTERNAL,only)", "stopClient", "finish(INTERNAL)"]
    static let internalWithBackend = ["resetBackend", "sendStatus(INTERNAL,only)", "stopClient", "finish(INTERNAL)"]

    /// `expected[phase]` for each event; a phase missing from a row is a test bug (checked below).
    struct Row: CustomTestStringConvertible, Sendable {
        var name: String
        var event: @Sendable (CallDriver) -> CallDriver.Event
        var expected: [Phase: [String]]
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(
            name: "request head again", event: { $0.sendHead },
            expected: [
                .idle: ["authenticate(a.b.c)"], .authenticating: [], .awaitingFirstMessage: ["readRequests"],
                .admitting: ["readRequests"],
                .connecting: ["readRequests"], .forwarding: ["readRequests"], .closing: [], .closed: [],
            ]),
        Row(
            name: "request trailers with END_STREAM", event: { _ in .requestTrailers(endStream: true) },
            expected: [
                .idle: [], .authenticating: [], .awaitingFirstMessage: ["readRequests"], .admitting: ["readRequests"],
                .connecting: ["readRequests"], .forwarding: ["readRequests"], .closing: [], .closed: [],
            ]),
        Row(
            name: "request data", event: { _ in .requestData(bytes: 10, endStream: false) },
            expected: [
                .idle: [], .authenticating: [], .awaitingFirstMessage: ["readRequests"], .admitting: ["readRequests"],
                .connecting: ["readRequests"], .forwarding: ["readRequests"],
                .closing: ["returnRequestCredit(10,connection)"], .closed: ["returnRequestCredit(10,connection)"],
            ]),
        Row(
            name: "request prefix", event: { _ in .requestPrefix(length: 100, compressed: false) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: [],
                .admitting: ["sendStatus(INVALID_ARGUMENT,only)", "stopClient"],
                .connecting: [
                    "resetBackend", "sendStatus(INVALID_ARGUMENT,only)", "stopClient", "finish(INVALID_ARGUMENT)",
                ],
                .forwarding: [
                    "resetBackend", "sendStatus(INVALID_ARGUMENT,only)", "stopClient", "finish(INVALID_ARGUMENT)",
                ], .closing: [], .closed: [],
            ]),
        Row(
            name: "request message", event: { .requestMessage(.success($0.envelope())) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: ["admit"],
                .admitting: ["sendStatus(INVALID_ARGUMENT,only)", "stopClient"],
                .connecting: [
                    "resetBackend", "sendStatus(INVALID_ARGUMENT,only)", "stopClient", "finish(INVALID_ARGUMENT)",
                ],
                .forwarding: [
                    "resetBackend", "sendStatus(INVALID_ARGUMENT,only)", "stopClient", "finish(INVALID_ARGUMENT)",
                ], .closing: [], .closed: [],
            ]),
        Row(
            name: "malformed request message", event: { _ in .requestMessage(.failure(.truncated)) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly,
                .awaitingFirstMessage: ["sendStatus(INVALID_ARGUMENT,only)", "stopClient", "finish(INVALID_ARGUMENT)"],
                .admitting: ["sendStatus(INVALID_ARGUMENT,only)", "stopClient"],
                .connecting: [
                    "resetBackend", "sendStatus(INVALID_ARGUMENT,only)", "stopClient", "finish(INVALID_ARGUMENT)",
                ],
                .forwarding: [
                    "resetBackend", "sendStatus(INVALID_ARGUMENT,only)", "stopClient", "finish(INVALID_ARGUMENT)",
                ], .closing: [], .closed: [],
            ]),
        Row(
            name: "requests drained", event: { _ in .requestsDrained(partialBytes: 0) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: [], .admitting: [],
                .connecting: [], .forwarding: [], .closing: [], .closed: [],
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
                .idle: ["finish(CANCELLED)"], .authenticating: ["finish(CANCELLED)"],
                .awaitingFirstMessage: ["finish(CANCELLED)"], .admitting: [],
                .connecting: ["resetBackend", "finish(CANCELLED)"], .forwarding: ["resetBackend", "finish(CANCELLED)"],
                .closing: [], .closed: [],
            ]),
        Row(
            name: "authenticated", event: { .authenticated($0.token, team: $0.team) },
            expected: [
                .idle: internalEarly, .authenticating: ["readRequests"], .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: internalWithBackend, .closing: [], .closed: [],
            ]),
        Row(
            name: "authentication failed",
            event: { _ in .authenticationFailed(AuthFailure(.expired, "token expired")) },
            expected: [
                .idle: internalEarly,
                .authenticating: ["sendStatus(UNAUTHENTICATED,only)", "stopClient", "finish(UNAUTHENTICATED)"],
                .awaitingFirstMessage: internalEarly, .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: internalWithBackend, .closing: [], .closed: [],
            ]),
        Row(
            name: "admission decided", event: { _ in .admissionDecided(.success(AdmissionGrant())) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: ["openStream(10.0.0.5:15002)"],
                .connecting: internalWithBackend, .forwarding: internalWithBackend,
                .closing: ["finish(DEADLINE_EXCEEDED)"], .closed: [],
            ]),
        Row(
            name: "backend opened", event: { _ in .backendOpened },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: ["sendRequest", "readRequests"], .forwarding: internalWithBackend,
                .closing: ["resetBackend"], .closed: ["resetBackend"],
            ]),
        Row(
            name: "backend open failed", event: { _ in .backendOpenFailed(.unavailable("down")) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: ["sendStatus(UNAVAILABLE,only)", "stopClient", "finish(UNAVAILABLE)"],
                .forwarding: internalWithBackend, .closing: [], .closed: [],
            ]),
        Row(
            name: "backend session lost",
            event: { _ in .backendSessionLost(SparkgateError(.failedPrecondition, "engine gone")) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: ["sendStatus(FAILED_PRECONDITION,only)", "stopClient", "finish(FAILED_PRECONDITION)"],
                .forwarding: internalWithBackend, .closing: [], .closed: [],
            ]),
        Row(
            name: "response head", event: { _ in .responseHead("h", httpStatus: "200", trailers: nil) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: ["sendResponseHead(h)"], .closing: [], .closed: [],
            ]),
        Row(
            name: "trailers-only response",
            event: { _ in .responseHead("t", httpStatus: "200", trailers: BackendStatus(code: .ok)) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: ["forwardTrailers(t,only)", "stopClient", "finish(OK)"],
                .closing: [], .closed: [],
            ]),
        Row(
            name: "response data", event: { _ in .responseData(bytes: 50, endStream: false) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: ["readResponses"], .closing: [], .closed: [],
            ]),
        Row(
            name: "response prefix", event: { _ in .responsePrefix(length: 45, compressed: false) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: [], .closing: [], .closed: [],
            ]),
        Row(
            name: "response message", event: { _ in .responseMessage(nil) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: ["sendResponse"], .closing: [], .closed: [],
            ]),
        Row(
            name: "responses drained", event: { _ in .responsesDrained(partialBytes: 0) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: [], .closing: [], .closed: [],
            ]),
        Row(
            name: "response trailers", event: { _ in .responseTrailers("t", BackendStatus(code: .ok)) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: ["forwardTrailers(t,only)", "stopClient", "finish(OK)"],
                .closing: [], .closed: [],
            ]),
        Row(
            name: "response flushed", event: { _ in .responseFlushed(bytes: 10) },
            expected: [
                .idle: [], .authenticating: [], .awaitingFirstMessage: [], .admitting: [], .connecting: [],
                .forwarding: [], .closing: [], .closed: [],
            ]),
        Row(
            name: "backend reset", event: { _ in .backendReset(.refusedStream) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: ["sendStatus(UNAVAILABLE,only)", "stopClient", "finish(UNAVAILABLE)"],
                .forwarding: ["sendStatus(UNAVAILABLE,only)", "stopClient", "finish(UNAVAILABLE)"], .closing: [],
                .closed: [],
            ]),
        Row(
            name: "deadline", event: { _ in .deadlineExpired },
            expected: [
                .idle: ["sendStatus(DEADLINE_EXCEEDED,only)", "stopClient", "finish(DEADLINE_EXCEEDED)"],
                .authenticating: ["sendStatus(DEADLINE_EXCEEDED,only)", "stopClient", "finish(DEADLINE_EXCEEDED)"],
                .awaitingFirstMessage: [
                    "sendStatus(DEADLINE_EXCEEDED,only)", "stopClient", "finish(DEADLINE_EXCEEDED)",
                ],
                .admitting: ["sendStatus(DEADLINE_EXCEEDED,only)", "stopClient"],
                .connecting: [
                    "resetBackend", "sendStatus(DEADLINE_EXCEEDED,only)", "stopClient", "finish(DEADLINE_EXCEEDED)",
                ],
                .forwarding: [
                    "resetBackend", "sendStatus(DEADLINE_EXCEEDED,only)", "stopClient", "finish(DEADLINE_EXCEEDED)",
                ], .closing: [], .closed: [],
            ]),
        Row(
            name: "terminated",
            event: { _ in .terminated(SparkgateError(.cancelled, "an operator ended this session"), reason: "killed") },
            expected: [
                .idle: ["sendStatus(CANCELLED,only)", "stopClient", "finish(CANCELLED)"],
                .authenticating: ["sendStatus(CANCELLED,only)", "stopClient", "finish(CANCELLED)"],
                .awaitingFirstMessage: ["sendStatus(CANCELLED,only)", "stopClient", "finish(CANCELLED)"],
                .admitting: ["sendStatus(CANCELLED,only)", "stopClient"],
                .connecting: ["resetBackend", "sendStatus(CANCELLED,only)", "stopClient", "finish(CANCELLED)"],
                .forwarding: ["resetBackend", "sendStatus(CANCELLED,only)", "stopClient", "finish(CANCELLED)"],
                .closing: [], .closed: [],
            ]),
        Row(
            name: "unknown key",
            event: { _ in .unknownKey(AuthFailure(.unknownKey, "unknown key id 'k9'"), mayRefresh: true) },
            expected: [
                .idle: internalEarly, .authenticating: ["refreshKeys"], .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: internalWithBackend, .closing: [], .closed: [],
            ]),
        Row(
            name: "keys refreshed", event: { _ in .keysRefreshed },
            expected: [
                .idle: internalEarly, .authenticating: ["authenticate(a.b.c)"], .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: internalWithBackend, .closing: [], .closed: [],
            ]),
        Row(
            name: "artifacts charged, unasked", event: { _ in .artifactsCharged(nil) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: internalWithBackend, .closing: [], .closed: [],
            ]),
        Row(
            name: "results charged, unasked", event: { _ in .resultsCharged(nil) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: internalWithBackend, .closing: [], .closed: [],
            ]),
        Row(
            name: "backend stream failed", event: { _ in .backendStreamFailed(reason: "connection refused") },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: [
                    "recordEndpointFailure(10.0.0.5:15002)", "sendStatus(UNAVAILABLE,only)", "stopClient",
                    "finish(UNAVAILABLE)",
                ],
                .forwarding: internalWithBackend, .closing: [], .closed: ["recordEndpointFailure(10.0.0.5:15002)"],
            ]),
        Row(
            name: "operation end recalled", event: { _ in .operationEndRecalled(nil) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                // The driver's call is a Config: its admission was asked at once, so no recall was pending.
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: internalWithBackend, .closing: [], .closed: [],
            ]),
        Row(
            name: "backend health read, unasked", event: { _ in .backendHealthRead(unhealthy: []) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: internalWithBackend, .closing: [], .closed: [],
            ]),
        Row(
            name: "placement recorded, unasked", event: { _ in .placementRecorded(SessionPlacement()) },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: internalWithBackend, .closing: [], .closed: [],
            ]),
        Row(
            name: "engine ready, unasked",
            event: { _ in
                .engineReady(ReadyEngine(id: "e1", address: HostPort(host: "127.0.0.1", port: 20001), token: "t"))
            },
            expected: [
                .idle: internalEarly, .authenticating: internalEarly, .awaitingFirstMessage: internalEarly,
                .admitting: internalFromAdmitting,
                .connecting: internalWithBackend, .forwarding: internalWithBackend, .closing: [], .closed: [],
            ]),
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
            let actions = driver.send(row.event(driver))
            #expect(actions == row.expected[phase], "\(row.name) in \(phase)")
            // Whatever happened, the call is accounted for at most once.
            #expect(driver.finishes.count <= 1 + (phase == .closed ? 1 : 0), "\(row.name) in \(phase)")
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
