extension CallStateMachine {
    /// Whether response messages' envelopes are read: result counting, id rewriting, config redaction,
    /// interrupted ids; other responses pass through unread.
    func readsEnvelopes(_ plan: AdmissionPlan) -> Bool {
        method.isServerStreaming || !plan.responseRewrite.isIdentity || method == .interrupt
    }

    mutating func receivedResponseHeaders(
        _ metadata: Metadata, httpStatus: String?, status: BackendStatus?, now: Double, into actions: inout [Action]
    ) {
        switch phase {
        case .forwarding(_, let plan, _):
            let backend = audit.summary.backend ?? ""
            if response.started {
                guard let status else {
                    return refuse(
                        CallRefusal(
                            SparkgateError(.internal, "backend '\(backend)' sent a second response head"),
                            reason: "backend_protocol", metric: .backend), now: now, into: &actions)
                }
                // Trailers after the response messages.
                if releaseIsMoot(status), audit.allFlushed, audit.summary.responseBytes == 0 {
                    return answerLocally(
                        ReleaseExecuteAnswer.message(sessionID: plan.sessionIDAsSent), note: "session_closed",
                        backendStatus: status, now: now, into: &actions)
                }
                actions.append(.forwardTrailers(metadata, trailersOnly: false))
                if !request.clientEnded { actions.append(.stopClient) }
                let (code, note) = recorded(status)
                return finish(code: code, refusal: nil, backendStatus: status, note: note, now: now, into: &actions)
            }
            if let httpStatus, httpStatus != "200" {
                return refuse(
                    CallRefusal(
                        .unavailable("backend '\(backend)' answered HTTP \(httpStatus.prefix(8)) instead of gRPC"),
                        reason: "backend_http_status", metric: .backend), now: now, into: &actions)
            }
            if let status {
                // Trailers-only: the backend's status is the whole response.
                if releaseIsMoot(status) {
                    return answerLocally(
                        ReleaseExecuteAnswer.message(sessionID: plan.sessionIDAsSent), note: "session_closed",
                        backendStatus: status, now: now, into: &actions)
                }
                actions.append(.forwardTrailers(metadata, trailersOnly: true))
                if !request.clientEnded { actions.append(.stopClient) }
                let (code, note) = recorded(status)
                return finish(code: code, refusal: nil, backendStatus: status, note: note, now: now, into: &actions)
            }
            response.started = true
            actions.append(.sendResponseHead(metadata))
        case .closing, .closed:
            // In flight when Sparkgate reset the stream.
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting:
            impossible("a response head", now: now, into: &actions)
        }
    }

    /// The status the audit line and metrics record for the backend's `status`, and the audit reason when
    /// it is not a failure: a result stream the client itself replaced (it reattached on a new stream) ends
    /// with Spark's `INVALID_CURSOR.DISCONNECTED`, which is normal use, so it is counted CANCELLED with
    /// reason `superseded_by_reattach`, never INTERNAL. The client gets the trailers Spark sent.
    func recorded(_ status: BackendStatus) -> (code: GRPCStatusCode, note: String?) {
        guard status.code == .internal, status.errorClass == "INVALID_CURSOR.DISCONNECTED", method.isServerStreaming
        else { return (status.code, nil) }
        return (.cancelled, "superseded_by_reattach")
    }

    mutating func receivedResponseData(bytes: Int, endStream: Bool, now: Double, into actions: inout [Action]) {
        switch phase {
        case .forwarding(_, let plan, _):
            if endStream { response.endedWithData = true } else { response.credit.received(bytes) }
            actions.append(.readResponses(envelopes: readsEnvelopes(plan)))
        case .closing, .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting:
            impossible("response data", now: now, into: &actions)
        }
    }

    mutating func receivedResponsePrefix(length: Int, compressed: Bool, now: Double, into actions: inout [Action]) {
        switch phase {
        case .forwarding:
            guard length <= policy.maxMessageBytes else {
                return refuse(
                    CallRefusal(
                        .resourceExhausted(
                            "the backend sent a \(length)-byte message, larger than max_message_bytes (\(policy.maxMessageBytes))"
                        ), reason: "message_too_large"), now: now, into: &actions)
            }
            response.messageLength = length + 5
        case .closing, .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting:
            impossible("a response message", now: now, into: &actions)
        }
    }

    mutating func receivedResponseMessage(
        _ message: Message, _ envelope: ResponseEnvelope?, now: Double, into actions: inout [Action]
    ) {
        switch phase {
        case .forwarding(_, let plan, let admission):
            if response.firstResponseSeconds == nil { response.firstResponseSeconds = now - startedAt }
            var pending = ResponseFlow.Pending(
                message: message, edits: [],
                sent: CallAudit.Unflushed(length: response.messageLength, resultBytes: 0, rows: 0),
                completes: false)
            if let envelope {
                pending.completes = envelope.resultComplete
                if envelope.arrow.bytes > 0 || envelope.arrow.rows > 0 {
                    pending.sent.resultBytes = envelope.arrow.bytes
                    pending.sent.rows = envelope.arrow.rows
                    pending.needsCharge = admission.resultLimited && plan.operation != nil
                }
                pending.interruptedIDs = method == .interrupt ? envelope.interruptedIDs : []
                pending.edits = plan.responseRewrite.edits(for: envelope, method: method)
            }
            if response.awaitingCharge.isEmpty && !pending.needsCharge {
                // Nothing waits for a charge: the message goes at once (no queue for the common case).
                send(pending, plan, into: &actions)
            } else {
                response.awaitingCharge.append(pending)
                sendResponses(plan, into: &actions)
            }
        case .closing, .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting:
            impossible("a response message", now: now, into: &actions)
        }
    }

    /// The ledger charged (or refused) the oldest waiting response message's results.
    mutating func resultsCharged(_ refusal: QuotaRefusal?, now: Double, into actions: inout [Action]) {
        switch phase {
        case .forwarding(_, let plan, let admission):
            guard response.charging else {
                return impossible("a result charge nobody asked for", now: now, into: &actions)
            }
            response.charging = false
            if let refusal, let op = plan.operation {
                actions.append(
                    .interruptOperation(
                        op, backendSessionID: plan.route.backendSessionID, backend: plan.route.backend,
                        placement: admission.placement))
                actions.append(.endOperation(op, refusal.error))
                return refuse(.quota(refusal), now: now, into: &actions)
            }
            if !response.awaitingCharge.isEmpty { response.awaitingCharge[0].needsCharge = false }
            sendResponses(plan, into: &actions)
        case .closing, .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting:
            impossible("a result charge", now: now, into: &actions)
        }
    }

    /// Sends response messages in order, until one waits for its result charge (asked for here, once).
    private mutating func sendResponses(_ plan: AdmissionPlan, into actions: inout [Action]) {
        while let next = response.awaitingCharge.first {
            if next.needsCharge, let op = plan.operation {
                if !response.charging {
                    response.charging = true
                    actions.append(.chargeResults(op, bytes: next.sent.resultBytes, rows: next.sent.rows))
                }
                return
            }
            response.awaitingCharge.removeFirst()
            send(next, plan, into: &actions)
        }
    }

    private mutating func send(
        _ next: ResponseFlow<Message>.Pending, _ plan: AdmissionPlan, into actions: inout [Action]
    ) {
        do {
            if next.completes {
                response.sawResultComplete = true
                // The client has its whole result: the operation stops counting toward concurrency now, not
                // when its stream ends (its bytes and rows stay in the session's totals).
                if let op = plan.operation { actions.append(.operationCompleted(op)) }
            }
            response.interruptedIDs += next.interruptedIDs
            response.credit.accommodate(messageBytes: next.sent.length, ceiling: policy.maxBufferedPerStream)
            response.credit.wrote(next.sent.length)
            audit.wrote(next.sent)
            actions.append(.sendResponse(next.message, edits: next.edits))
        }
    }

    mutating func drainedResponses(partialBytes: Int, now: Double, into actions: inout [Action]) {
        switch phase {
        case .forwarding:
            if response.endedWithData {
                // DATA with END_STREAM and no trailers is not gRPC.
                return refuse(
                    CallRefusal(
                        SparkgateError(
                            .internal, "backend '\(audit.summary.backend ?? "")' ended the response without a status"),
                        reason: "backend_no_status", metric: .backend), backendEnded: true, now: now, into: &actions)
            }
            let bytes = response.credit.take()
            if bytes > 0 { actions.append(.returnResponseCredit(bytes: bytes)) }
        case .closing, .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting:
            impossible("the end of the response messages", now: now, into: &actions)
        }
    }

    /// A ReleaseExecute the backend refuses because the session is closed has nothing left to release: closing
    /// a session releases its operations. Decided from the error class, so a client racing its own
    /// ReleaseSession (PySpark does, after stop()) sees OK rather than an error it cannot act on.
    func releaseIsMoot(_ status: BackendStatus) -> Bool {
        method == .releaseExecute && status.code != .ok && status.errorClass == "INVALID_HANDLE.SESSION_CLOSED"
    }

    mutating func flushedResponse(bytes: Int, into actions: inout [Action]) {
        // Flushes of one stream complete in the order its messages were written.
        audit.flushedOne()
        let wasHeld = response.credit.isHeld
        response.credit.flushed(bytes)
        guard case .forwarding = phase else { return }
        let credit = response.credit.take(force: wasHeld && !response.credit.isHeld)
        if credit > 0 { actions.append(.returnResponseCredit(bytes: credit)) }
    }

    mutating func backendReset(_ reset: BackendReset, now: Double, into actions: inout [Action]) {
        switch phase {
        case .connecting, .forwarding:
            let backend = audit.summary.backend ?? ""
            let error: SparkgateError
            switch reset {
            case .refusedStream: error = .unavailable("backend '\(backend)' refused the stream; retry shortly")
            case .cancel: error = SparkgateError(.cancelled, "backend '\(backend)' cancelled the call")
            case .enhanceYourCalm: error = .resourceExhausted("backend '\(backend)' is overloaded (ENHANCE_YOUR_CALM)")
            case .other(let code): error = SparkgateError(.internal, "backend '\(backend)' reset the stream (\(code))")
            case .connectionLost:
                error = .unavailable("lost the connection to backend '\(backend)' during the call; retry")
            }
            refuse(
                CallRefusal(error, reason: "backend_closed", metric: .backend), backendEnded: true, now: now,
                into: &actions)
        case .closing, .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting:
            impossible("a backend reset", now: now, into: &actions)
        }
    }
}
