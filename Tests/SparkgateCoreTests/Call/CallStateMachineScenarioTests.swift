import SparkgateCore
import Testing

@Suite("Call state machine: scenarios")
struct CallStateMachineScenarioTests {
    @Test("a unary call whose message arrives with END_STREAM leaves as one message with END_STREAM, then trailers")
    func unaryHappyPath() {
        var d = CallDriver()
        #expect(d.send(.requestHead(d.head, endStream: false, bufferedBytes: 0)) == ["authenticate(a.b.c)"])
        #expect(d.send(.authenticated(d.token, team: d.team)) == ["readRequests"])
        #expect(d.send(.requestsDrained(partialBytes: 0)) == [])
        #expect(d.send(.requestData(bytes: 105, endStream: true)) == ["readRequests"])
        // The whole message arrived: its window goes back on the connection only (the stream is ended).
        #expect(d.send(.requestPrefix(length: 100, compressed: false)) == ["returnRequestCredit(105,connection)"])
        #expect(d.send(.requestMessage(.success(d.envelope()))) == ["admit"])
        #expect(d.send(.requestsDrained(partialBytes: 0)) == [])
        #expect(d.admit() == ["openStream(10.0.0.5:15002)"])
        #expect(d.send(.backendOpened) == ["sendRequest(end)", "readRequests"])
        #expect(d.send(.responseHead("h", httpStatus: "200", trailers: nil)) == ["sendResponseHead(h)"])
        #expect(d.send(.responseData(bytes: 30, endStream: false)) == ["readResponses"])
        #expect(d.send(.responsePrefix(length: 25, compressed: false)) == [])
        #expect(d.send(.responseMessage(ResponseEnvelope())) == ["sendResponse"])
        #expect(d.send(.responsesDrained(partialBytes: 0)) == [])
        #expect(d.send(.responseTrailers("t", BackendStatus(code: .ok))) == ["forwardTrailers(t)", "finish(OK)"])
        let outcome = d.finishes[0]
        #expect(outcome.summary.requestBytes == 105 && outcome.summary.responseBytes == 30)
        #expect(outcome.summary.status == "OK" && outcome.summary.reason == nil)
        #expect(outcome.admitted?.session.clientSessionID == CallDriver.sessionID)
        #expect(d.ledger.sessions.count == 1 && d.ledger.sessions.values.first?.activeCalls == 0)
    }

    @Test("HEADERS with END_STREAM and no message is refused at once with INVALID_ARGUMENT")
    func endStreamWithoutMessage() {
        var d = CallDriver()
        d.send(.requestHead(d.head, endStream: true, bufferedBytes: 0))
        #expect(d.send(.authenticated(d.token, team: d.team)) == ["readRequests"])
        #expect(
            d.send(.requestsDrained(partialBytes: 0)) == [
                "sendStatus(INVALID_ARGUMENT,only)", "finish(INVALID_ARGUMENT)",
            ])
        #expect(d.finishes[0].summary.reason == "no_message")
    }

    @Test("a truncated message followed by END_STREAM is refused at once, and its window goes back")
    func truncated() {
        var d = CallDriver()
        d.toAwaitingFirstMessage()
        d.send(.requestData(bytes: 40, endStream: false))
        // Window for the message's bytes flows as they arrive.
        #expect(d.send(.requestPrefix(length: 100, compressed: false)) == ["returnRequestCredit(40)"])
        #expect(d.send(.requestsDrained(partialBytes: 40)) == [])
        #expect(d.send(.requestData(bytes: 0, endStream: true)) == ["readRequests"])
        #expect(
            d.send(.requestsDrained(partialBytes: 40)) == [
                "sendStatus(INVALID_ARGUMENT,only)", "finish(INVALID_ARGUMENT)",
            ])
        #expect(d.finishes[0].summary.reason == "truncated")
    }

    @Test("a first message larger than the stream window completes: window flows while it is read, and only for it")
    func firstMessageLargerThanWindow() {
        let window = 1 << 20
        var d = CallDriver(window: window)
        d.toAwaitingFirstMessage()
        let length = 2 << 20  // twice the stream window
        d.send(.requestData(bytes: 16 << 10, endStream: false))
        d.send(.requestPrefix(length: length, compressed: false))
        var returned = 16 << 10  // the prefix returned the first frame's window at once
        var received = 16 << 10
        // The client may only have `window` bytes in flight: it sends as window comes back.
        while received < length + 5 {
            let inFlight = received - returned
            let chunk = min(16 << 10, length + 5 - received, window - inFlight)
            #expect(chunk > 0, "the client ran out of window after \(received) of \(length + 5) bytes")
            guard chunk > 0 else { return }
            received += chunk
            for action in d.send(.requestData(bytes: chunk, endStream: false)) {
                if action.hasPrefix("returnRequestCredit(") {
                    returned += Int(action.dropFirst("returnRequestCredit(".count).prefix { $0.isNumber })!
                }
            }
        }
        let done = d.send(.requestMessage(.success(d.envelope())))
        #expect(done.last == "admit")
        for action in done where action.hasPrefix("returnRequestCredit(") {
            returned += Int(action.dropFirst("returnRequestCredit(".count).prefix { $0.isNumber })!
        }
        #expect(returned == length + 5, "the whole first message's window went back")
        // Bytes beyond the first message get no window until the backend takes the message.
        #expect(d.send(.requestData(bytes: 200 << 10, endStream: false)) == ["readRequests"])
        d.send(.requestsDrained(partialBytes: 200 << 10))
        #expect(d.admit() == ["openStream(10.0.0.5:15002)"])
        let opened = d.send(.backendOpened)
        #expect(opened.first == "sendRequest")
    }

    @Test("message and request limits are refused from the prefix, before the message is buffered")
    func limitsFromPrefix() {
        var d = CallDriver(maxMessageBytes: 1 << 20)
        d.toAwaitingFirstMessage()
        d.send(.requestData(bytes: 5, endStream: false))
        #expect(
            d.send(.requestPrefix(length: Int(UInt32.max), compressed: false)) == [
                "sendStatus(RESOURCE_EXHAUSTED,only)", "stopClient", "returnRequestCredit(5,connection)",
                "finish(RESOURCE_EXHAUSTED)",
            ])
        #expect(d.finishes[0].refusal?.error.message.contains("max_message_bytes (1048576)") == true)

        var q = CallDriver.quotas
        q.maxRequestBytes = 1000
        var t = CallDriver(quotas: q)
        t.toAwaitingFirstMessage()
        t.send(.requestData(bytes: 5, endStream: false))
        t.send(.requestPrefix(length: 5000, compressed: false))
        #expect(
            t.finishes[0].refusal
                == .quota(
                    QuotaRefusal(
                        .requestBytes,
                        "team analytics allows request messages of 1000 bytes (max_request_bytes); this one has 5000")))
    }

    @Test("authentication refusals name the reason; an unknown team is PERMISSION_DENIED")
    func authentication() {
        var d = CallDriver()
        var head = d.head
        head.authorization = []
        #expect(
            d.send(.requestHead(head, endStream: false, bufferedBytes: 0)) == [
                "sendStatus(UNAUTHENTICATED,only)", "stopClient", "finish(UNAUTHENTICATED)",
            ])
        #expect(d.finishes[0].refusal?.metric == .authFailure(.missing))

        var u = CallDriver()
        u.toAuthenticating()
        #expect(
            u.send(.authenticated(u.token, team: nil)) == [
                "sendStatus(PERMISSION_DENIED,only)", "stopClient", "finish(PERMISSION_DENIED)",
            ])
        #expect(u.finishes[0].refusal?.metric == .authFailure(.unknownTeam))
    }

    @Test(
        "the backend refusing or resetting the stream, or going away mid-stream, is UNAVAILABLE or says what happened")
    func backendFailures() {
        for (reset, code) in [
            (BackendReset.refusedStream, "UNAVAILABLE"), (.connectionLost, "UNAVAILABLE"),
            (.enhanceYourCalm, "RESOURCE_EXHAUSTED"), (.cancel, "CANCELLED"), (.other("PROTOCOL_ERROR"), "INTERNAL"),
        ] {
            var d = CallDriver(method: "ExecutePlan")
            d.toForwarding(operation: CallDriver.operationID)
            d.send(.responseHead("h", httpStatus: "200", trailers: nil))
            #expect(d.send(.backendReset(reset)) == ["sendStatus(\(code))", "stopClient", "finish(\(code))"])
            #expect(d.finishes[0].refusal?.metric == .backend)
            // The stream was reset by the backend: Sparkgate does not reset it again, and late frames change nothing.
            #expect(d.send(.responseData(bytes: 10, endStream: false)) == [])
        }
        var failed = CallDriver()
        failed.toConnecting()
        #expect(
            failed.send(.backendOpenFailed(.unavailable("backend 'local' (127.0.0.1:1) is unreachable"))) == [
                "sendStatus(UNAVAILABLE,only)", "stopClient", "finish(UNAVAILABLE)",
            ])
        #expect(failed.finishes[0].summary.reason == "backend_unreachable")
        // The ledger heard the end of the admitted call.
        #expect(failed.ledger.sessions.values.first?.activeCalls == 0)
    }

    @Test(
        "the client resetting while the backend streams resets the backend; what the backend still sends changes nothing"
    )
    func clientResetWhileStreaming() {
        var d = CallDriver(method: "ExecutePlan")
        d.toForwarding(operation: CallDriver.operationID)
        d.send(.responseHead("h", httpStatus: "200", trailers: nil))
        #expect(d.send(.clientGone) == ["resetBackend", "finish(CANCELLED)"])
        #expect(d.send(.responseData(bytes: 1000, endStream: false)) == [])
        #expect(d.send(.responseTrailers("t", BackendStatus(code: .ok))) == [])
        #expect(d.finishes.count == 1)
        // A reattachable operation survives its stream: the client may reattach.
        let op = OperationKey(
            session: SessionKey(
                owner: UserKey(team: "analytics", user: "alice"), clientSessionID: CallDriver.sessionID),
            operationID: CallDriver.operationID)
        #expect(d.ledger.operation(op)?.attachedStreams == 0)
    }

    @Test("while draining, a new operation is refused at its first message; calls already forwarding carry on")
    func drain() {
        var d = CallDriver(method: "ExecutePlan")
        d.toAwaitingFirstMessage()
        d.send(.drain)
        d.send(.requestData(bytes: 105, endStream: true))
        d.send(.requestPrefix(length: 100, compressed: false))
        #expect(
            d.send(.requestMessage(.success(d.envelope(operation: CallDriver.operationID)))) == [
                "sendStatus(UNAVAILABLE,only)", "finish(UNAVAILABLE)",
            ])
        #expect(d.finishes[0].summary.reason == "draining")

        var f = CallDriver(method: "ExecutePlan")
        f.toForwarding(operation: CallDriver.operationID)
        #expect(f.send(.drain) == [])
        #expect(f.send(.responseHead("h", httpStatus: "200", trailers: nil)) == ["sendResponseHead(h)"])
    }

    @Test("a result past the operation's limit interrupts it on the backend, ends its other streams and refuses")
    func resultLimit() {
        var q = CallDriver.quotas
        q.maxResultBytesPerOperation = 1000
        var d = CallDriver(method: "ExecutePlan", quotas: q)
        d.toForwarding(operation: CallDriver.operationID)
        d.send(.responseHead("h", httpStatus: "200", trailers: nil))
        var batch = ResponseEnvelope()
        batch.arrow = ArrowBatchCount(bytes: 800, rows: 10)
        d.send(.responseData(bytes: 900, endStream: false))
        d.send(.responsePrefix(length: 850, compressed: false))
        // Each batch is charged to the ledger before it goes: the one past the limit never goes.
        #expect(d.send(.responseMessage(batch)) == ["chargeResults(800)", "sendResponse"])
        d.send(.responsePrefix(length: 850, compressed: false))
        #expect(
            d.send(.responseMessage(batch)) == [
                "chargeResults(800)", "interruptOperation", "endOperation", "resetBackend",
                "sendStatus(RESOURCE_EXHAUSTED)", "stopClient", "finish(RESOURCE_EXHAUSTED)",
            ])
        #expect(d.finishes[0].summary.resultBytes == 800)  // the batch past the limit never reached the client
    }

    @Test("a call the ledger refuses ends at once, counted toward the limit that refused it")
    func ledgerRefuses() {
        var q = CallDriver.quotas
        q.maxConcurrentOperationsPerSession = 1
        var first = CallDriver(method: "ExecutePlan", quotas: q)
        first.toForwarding(operation: CallDriver.operationID)
        var second = CallDriver(method: "ExecutePlan", quotas: q)
        second.ledger = first.ledger
        second.toAdmitting(operation: "00000000-0000-4000-8000-0000000000bb")
        #expect(second.admit() == ["sendStatus(RESOURCE_EXHAUSTED,only)", "stopClient", "finish(RESOURCE_EXHAUSTED)"])
        #expect(second.finishes.first?.refusal?.metric == .quota(.operationsPerSession))

        var a = CallDriver(
            method: "AddArtifacts",
            quotas: {
                var q = CallDriver.quotas
                q.maxArtifactBytesPerSession = 10
                return q
            }())
        a.toAwaitingFirstMessage()
        a.send(.requestData(bytes: 105, endStream: false))
        a.send(.requestPrefix(length: 100, compressed: false))
        var upload = a.envelope()
        upload.artifactBytes = 50
        a.send(.requestMessage(.success(upload)))
        #expect(a.admit() == ["sendStatus(RESOURCE_EXHAUSTED,only)", "stopClient", "finish(RESOURCE_EXHAUSTED)"])
        #expect(a.finishes.first?.refusal?.metric == .quota(.artifactBytes))
        // The upload is charged with the admission and refused by it: the ledger recorded nothing to hear about.
        #expect(a.finishes.first?.admitted == nil)
        #expect(a.ledger.sessions.isEmpty)
    }

    @Test("a call that ends while the ledger decides is accounted once the ledger answers, with what it recorded")
    func endWhileAdmitting() {
        var d = CallDriver(method: "ExecutePlan")
        d.toAdmitting(operation: CallDriver.operationID)
        #expect(d.send(.clientGone) == [])
        #expect(d.finishes.isEmpty)
        #expect(d.admit() == ["finish(CANCELLED)"])
        #expect(d.finishes[0].admitted != nil)
        // The ledger admitted and then heard the end: no call is left active.
        #expect(d.ledger.sessions.values.first?.activeCalls == 0)
    }

    @Test(
        "a backend error whose class says the session is gone releases it in the ledger; the same words in the message do not"
    )
    func sessionGoneFromErrorClass() {
        var gone = CallDriver()
        gone.toForwarding()
        let closed = BackendStatus(
            code: .internal, message: "[INVALID_HANDLE.SESSION_CLOSED] ...", errorClass: "INVALID_HANDLE.SESSION_CLOSED"
        )
        gone.send(.responseHead("t", httpStatus: "200", trailers: closed))
        #expect(gone.ledger.sessions.isEmpty)

        var echoed = CallDriver()
        echoed.toForwarding()
        let userText = BackendStatus(
            code: .internal, message: "[INVALID_HANDLE.SESSION_CLOSED] spelled by a user",
            errorClass: "USER_RAISED_EXCEPTION")
        echoed.send(.responseHead("t", httpStatus: "200", trailers: userText))
        #expect(echoed.ledger.sessions.count == 1)
    }

    @Test("a backend answering HTTP 503 or ending with DATA is refused with a clear status")
    func backendProtocol() {
        var d = CallDriver()
        d.toForwarding()
        #expect(
            d.send(.responseHead("h", httpStatus: "503", trailers: nil)) == [
                "resetBackend", "sendStatus(UNAVAILABLE,only)", "stopClient", "finish(UNAVAILABLE)",
            ])
        var e = CallDriver()
        e.toForwarding()
        e.send(.responseHead("h", httpStatus: "200", trailers: nil))
        e.send(.responseData(bytes: 0, endStream: true))
        #expect(
            e.send(.responsesDrained(partialBytes: 0)) == ["sendStatus(INTERNAL)", "stopClient", "finish(INTERNAL)"])
    }

    @Test("an operation stops counting when its result_complete reaches the client, not when its stream ends")
    func resultCompleteEndsTheOperation() {
        var d = CallDriver(method: "ExecutePlan")
        #expect(d.readResultComplete() == ["operationCompleted", "sendResponse"])
    }

    @Test(
        "a client that leaves once its result_complete left the gateway succeeded; one that leaves before was cancelled"
    )
    func clientLeavesAfterResultComplete() {
        func completed(flushed: Bool) -> CallDriver {
            var d = CallDriver(method: "ExecutePlan")
            d.readResultComplete()
            if flushed { d.send(.responseFlushed(bytes: 20)) }
            return d
        }
        var left = completed(flushed: true)
        #expect(left.send(.clientGone) == ["resetBackend", "finish(OK)"])
        #expect(left.finishes[0].summary.reason == "client_left_after_result")
        #expect(left.finishes[0].summary.responseBytes == 20)

        var cut = completed(flushed: false)
        #expect(cut.send(.clientGone) == ["resetBackend", "finish(CANCELLED)"])
        #expect(cut.finishes[0].summary.reason == "client_cancelled")
    }

    @Test("session and operation ids are compared in lower case; a non-UUID operation id is refused")
    func canonicalIDs() {
        var d = CallDriver(method: "ExecutePlan")
        d.toAwaitingFirstMessage()
        d.send(.requestData(bytes: 105, endStream: true))
        d.send(.requestPrefix(length: 100, compressed: false))
        d.send(
            .requestMessage(
                .success(
                    d.envelope(
                        session: CallDriver.sessionID.uppercased(), operation: CallDriver.operationID.uppercased()))))
        #expect(d.machine.plan?.session.clientSessionID == CallDriver.sessionID)
        #expect(d.machine.plan?.operation?.operationID == CallDriver.operationID)
        #expect(d.machine.plan?.responseRewrite.clientSessionID == CallDriver.sessionID.uppercased())  // echoed as sent
        var lower = CallDriver(method: "ExecutePlan")
        lower.toAwaitingFirstMessage()
        lower.send(.requestData(bytes: 105, endStream: true))
        lower.send(.requestPrefix(length: 100, compressed: false))
        lower.send(
            .requestMessage(.success(lower.envelope(session: CallDriver.sessionID, operation: CallDriver.operationID))))
        // Both spellings reach one backend session, as they would reach one Spark session without the gateway.
        #expect(lower.machine.plan?.admission.backendSessionID == d.machine.plan?.admission.backendSessionID)

        var bad = CallDriver(method: "ExecutePlan")
        bad.toAwaitingFirstMessage()
        bad.send(.requestData(bytes: 105, endStream: true))
        bad.send(.requestPrefix(length: 100, compressed: false))
        #expect(
            bad.send(.requestMessage(.success(bad.envelope(operation: String(repeating: "x", count: 900_000))))) == [
                "sendStatus(INVALID_ARGUMENT,only)", "finish(INVALID_ARGUMENT)",
            ])
        #expect(bad.finishes.first?.summary.reason == "bad_operation")
    }

    @Test("a late ReleaseExecute on a session Sparkgate released is answered OK by Sparkgate, without the backend")
    func lateReleaseAnsweredLocally() throws {
        var d = CallDriver(method: "ReleaseExecute")
        let key = SessionKey(owner: UserKey(team: "analytics", user: "alice"), clientSessionID: CallDriver.sessionID)
        var opening = CallAdmission(
            caller: key.owner, method: .config, clientSessionID: CallDriver.sessionID, backendSessionID: "b",
            backend: "local")
        opening.clientType = nil
        _ = try d.ledger.admit(opening, quotas: CallDriver.quotas, rejectForeignSessions: true, now: 0).get()
        d.ledger.sessionReleased(key, now: 1)
        d.toAdmitting(endStream: true, operation: CallDriver.operationID)
        #expect(d.admit() == ["answerLocally", "finish(OK)"])
        #expect(d.finishes[0].summary.reason == "already_released" && d.finishes[0].summary.status == "OK")
        #expect(
            ReleaseExecuteAnswer.message(sessionID: CallDriver.sessionID) == [0x0a, 36]
                + Array(CallDriver.sessionID.utf8))
        #expect(d.ledger.sessions.isEmpty)
    }

    @Test("a ReleaseExecute the backend refuses as SESSION_CLOSED is answered OK: the session's close released it")
    func releaseRacingSessionClose() {
        var d = CallDriver(method: "ReleaseExecute")
        d.toForwarding(endStream: true, operation: CallDriver.operationID)
        let closed = BackendStatus(
            code: .internal, message: "[INVALID_HANDLE.SESSION_CLOSED] ...", errorClass: "INVALID_HANDLE.SESSION_CLOSED"
        )
        #expect(d.send(.responseHead("h", httpStatus: "200", trailers: closed)) == ["answerLocally", "finish(OK)"])
        #expect(d.finishes[0].summary.reason == "session_closed" && d.finishes[0].backendStatus == closed)
        // Another error class, or another method, passes through as the backend said it.
        var other = CallDriver(method: "ReleaseExecute")
        other.toForwarding(endStream: true, operation: CallDriver.operationID)
        let notFound = BackendStatus(code: .internal, message: "", errorClass: "INVALID_HANDLE.OPERATION_NOT_FOUND")
        #expect(
            other.send(.responseHead("h", httpStatus: "200", trailers: notFound)) == [
                "forwardTrailers(h,only)", "finish(INTERNAL)",
            ])
        var config = CallDriver()
        config.toForwarding(endStream: true)
        #expect(
            config.send(.responseHead("h", httpStatus: "200", trailers: closed)) == [
                "forwardTrailers(h,only)", "finish(INTERNAL)",
            ])
    }

    @Test(
        "a session whose launched engine stopped: its calls are refused with the reason, its ReleaseSession succeeds without the backend"
    )
    func lostSession() {
        let lost = SparkgateError(
            .failedPrecondition, "this session lived on engine sail-1 (user:analytics/alice), which has stopped")
        var release = CallDriver(method: "ReleaseSession")
        release.toConnecting(endStream: true)
        #expect(release.send(.backendSessionLost(lost)) == ["answerLocally", "finish(OK)"])
        #expect(release.finishes[0].summary.reason == "engine_gone" && release.finishes[0].summary.status == "OK")
        #expect(release.ledger.sessions.isEmpty)
        var query = CallDriver(method: "ExecutePlan")
        query.toConnecting(endStream: true, operation: CallDriver.operationID)
        #expect(
            query.send(.backendSessionLost(lost)) == [
                "sendStatus(FAILED_PRECONDITION,only)", "finish(FAILED_PRECONDITION)",
            ])
        #expect(query.finishes[0].summary.reason == "engine_gone")
    }

    @Test(
        "a result stream the client replaced by reattaching (INVALID_CURSOR.DISCONNECTED) is counted CANCELLED, superseded_by_reattach, never INTERNAL"
    )
    func supersededByReattach() {
        let disconnected = BackendStatus(
            code: .internal, message: "[INVALID_CURSOR.DISCONNECTED] ...", errorClass: "INVALID_CURSOR.DISCONNECTED")
        for method in ["ExecutePlan", "ReattachExecute"] {
            var d = CallDriver(method: method)
            d.toForwarding(endStream: true, operation: CallDriver.operationID)
            d.send(.responseHead("h", httpStatus: "200", trailers: nil))
            #expect(d.send(.responseTrailers("t", disconnected)).contains("finish(CANCELLED)"), "\(method)")
            #expect(
                d.finishes[0].summary.reason == "superseded_by_reattach" && d.finishes[0].summary.status == "CANCELLED")
            #expect(d.finishes[0].summary.errorClass == "INVALID_CURSOR.DISCONNECTED")
        }
        // Another cursor error is the backend's failure; the same class on a unary call too.
        var other = CallDriver(method: "ExecutePlan")
        other.toForwarding(endStream: true, operation: CallDriver.operationID)
        other.send(.responseHead("h", httpStatus: "200", trailers: nil))
        other.send(
            .responseTrailers(
                "t", BackendStatus(code: .internal, message: "", errorClass: "INVALID_CURSOR.POSITION_NOT_AVAILABLE")))
        #expect(other.finishes[0].summary.status == "INTERNAL" && other.finishes[0].summary.reason == "backend_error")
        var unary = CallDriver()
        unary.toForwarding(endStream: true)
        unary.send(.responseHead("h", httpStatus: "200", trailers: disconnected))
        #expect(unary.finishes[0].summary.status == "INTERNAL")
    }

    @Test("an audit line for a backend error says so, with the backend's error class")
    func backendErrorReason() {
        var d = CallDriver()
        d.toForwarding(endStream: true)
        d.send(.responseHead("h", httpStatus: "200", trailers: nil))
        d.send(
            .responseTrailers(
                "t",
                BackendStatus(code: .internal, message: "[SQL_CONF_NOT_FOUND] ...", errorClass: "SQL_CONF_NOT_FOUND")))
        #expect(
            d.finishes[0].summary.reason == "backend_error" && d.finishes[0].summary.errorClass == "SQL_CONF_NOT_FOUND")
        #expect(
            d.finishes[0].summary.jsonLine.contains(#""reason":"backend_error","error_class":"SQL_CONF_NOT_FOUND""#))
    }

    @Test(
        "a ReattachExecute to an operation Sparkgate ended is told why before the ledger is asked; others are admitted")
    func reattachToEndedOperation() {
        var d = CallDriver(method: "ReattachExecute")
        let session = SessionKey(owner: UserKey(d.token.identity), clientSessionID: CallDriver.sessionID)
        d.endedOperations[OperationKey(session: session, operationID: CallDriver.operationID)] = SparkgateError(
            .cancelled, "the operation ran past max_operation_seconds (60 s) and was interrupted")
        d.toAwaitingFirstMessage()
        d.send(.requestData(bytes: 105, endStream: true))
        d.send(.requestPrefix(length: 100, compressed: false))
        #expect(
            d.send(.requestMessage(.success(d.envelope(operation: CallDriver.operationID)))) == [
                "recallOperationEnd", "sendStatus(CANCELLED,only)", "finish(CANCELLED)",
            ])
        #expect(d.finishes[0].summary.reason == "operation_ended" && d.finishes[0].admitted == nil)
        #expect(d.ledger.sessions.isEmpty)

        var other = CallDriver(method: "ReattachExecute")
        other.toAwaitingFirstMessage()
        other.send(.requestData(bytes: 105, endStream: true))
        other.send(.requestPrefix(length: 100, compressed: false))
        #expect(
            other.send(.requestMessage(.success(other.envelope(operation: CallDriver.operationID))))
                == ["recallOperationEnd", "admit"])
    }

    @Test("several endpoints: the health read and the placement record come before the stream, in the machine")
    func routedThroughTheMachine() {
        let a = HostPort(host: "10.0.0.5", port: 15002)
        let b = HostPort(host: "10.0.0.6", port: 15002)
        var d = CallDriver(
            backends: BackendDirectory(
                backends: ["local": SparkgateConfig.Backend(name: "local", endpoints: [a, b])], tokens: [:]))
        d.unhealthy = [a]
        d.toAdmitting(endStream: true)
        #expect(d.admit() == ["readBackendHealth(local)", "recordPlacement(claim 10.0.0.6:15002)"])
        #expect(d.send(.placementRecorded(SessionPlacement(endpoint: b))) == ["openStream(10.0.0.6:15002)"])
        #expect(
            d.send(.backendStreamFailed(reason: "connection refused")) == [
                "recordEndpointFailure(10.0.0.6:15002)", "sendStatus(UNAVAILABLE,only)", "finish(UNAVAILABLE)",
            ])
        #expect(
            d.finishes[0].refusal?.error.message.contains("(10.0.0.6:15002) is unreachable: connection refused") == true
        )
    }

    @Test("messages read before the backend opened are sent in the order read, each with its own bytes")
    func messagesKeepTheirOrder() {
        var d = CallDriver(method: "AddArtifacts")
        d.toAwaitingFirstMessage()
        d.send(.requestData(bytes: 315, endStream: false))
        for id in 1...3 {
            d.send(.requestPrefix(length: 100, compressed: false))
            d.send(.requestMessage(id, .success(d.envelope())))
        }
        d.send(.requestsDrained(partialBytes: 0))
        d.admit()
        #expect(d.sentRequests.isEmpty)
        d.send(.backendOpened)
        #expect(d.sentRequests == [1, 2, 3])

        var q = CallDriver.quotas
        q.maxResultBytesPerOperation = 10_000
        var e = CallDriver(method: "ExecutePlan", quotas: q)
        e.toForwarding(operation: CallDriver.operationID)
        e.send(.responseHead("h", httpStatus: "200", trailers: nil))
        var batch = ResponseEnvelope()
        batch.arrow = ArrowBatchCount(bytes: 100, rows: 1)
        e.send(.responseData(bytes: 400, endStream: false))
        for id in [10, 11, 12] {
            e.send(.responsePrefix(length: 120, compressed: false))
            // A charged batch and an uncharged message between two: the order holds either way.
            e.send(.responseMessage(id, id == 11 ? ResponseEnvelope() : batch))
        }
        #expect(e.sentResponses == [10, 11, 12])
    }
}
