extension CallStateMachine {
    mutating func receivedResponseHead(_ metadata: Metadata, httpStatus: String?, trailers: BackendStatus?, now: Double, into actions: inout [Action]) {
        switch phase {
        case .forwarding:
            guard !responseStarted else {
                return refuse(CallRefusal(SparkgateError(.internal, "backend '\(summary.backend ?? "")' sent a second response head"), reason: "backend_protocol", metric: .backend), now: now, into: &actions)
            }
            if let httpStatus, httpStatus != "200" {
                return refuse(CallRefusal(.unavailable("backend '\(summary.backend ?? "")' answered HTTP \(httpStatus.prefix(8)) instead of gRPC"), reason: "backend_http_status", metric: .backend), now: now, into: &actions)
            }
            if let trailers {
                // Trailers-only: the backend's status is the whole response.
                backendOpen = false
                if releaseIsMoot(trailers) { return answerLocally(ReleaseExecuteAnswer.message(sessionID: plan?.sessionIDAsSent ?? ""), note: "session_closed", backendStatus: trailers, now: now, into: &actions) }
                actions.append(.forwardTrailers(metadata, trailersOnly: true))
                if !clientEnded { actions.append(.stopClient) }
                return finish(code: trailers.code, refusal: nil, backendStatus: trailers, now: now, into: &actions)
            }
            responseStarted = true
            actions.append(.sendResponseHead(metadata))
        case .closed:
            // In flight when Sparkgate reset the stream.
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting:
            impossible("a response head", now: now, into: &actions)
        }
    }

    mutating func receivedResponseData(bytes: Int, endStream: Bool, now: Double, into actions: inout [Action]) {
        switch phase {
        case .forwarding:
            if endStream { backendEndedWithData = true } else { responseCredit.received(bytes) }
            actions.append(.readResponses)
        case .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting:
            impossible("response data", now: now, into: &actions)
        }
    }

    mutating func receivedResponsePrefix(length: Int, compressed: Bool, now: Double, into actions: inout [Action]) {
        switch phase {
        case .forwarding:
            guard length <= policy.maxMessageBytes else {
                return refuse(CallRefusal(.resourceExhausted("the backend sent a \(length)-byte message, larger than max_message_bytes (\(policy.maxMessageBytes))"), reason: "message_too_large"), now: now, into: &actions)
            }
            responseMessageLength = length + 5
        case .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting:
            impossible("a response message", now: now, into: &actions)
        }
    }

    mutating func receivedResponseMessage(_ envelope: ResponseEnvelope?, now: Double, accounting: inout some CallAccounting, into actions: inout [Action]) {
        switch phase {
        case .forwarding:
            let length = responseMessageLength
            if firstResponseSeconds == nil { firstResponseSeconds = now - startedAt }
            var edits: [ByteEdit] = []
            var sent = UnflushedResponse(length: length, resultBytes: 0, rows: 0)
            if let envelope, let plan {
                if envelope.resultComplete {
                    admitted?.sawResultComplete = true
                    // The client has its whole result: the operation stops counting toward concurrency now, not
                    // when its stream ends (its bytes and rows stay in the session's totals).
                    if let op = plan.operation { actions.append(.operationCompleted(op)) }
                }
                if envelope.arrow.bytes > 0 || envelope.arrow.rows > 0 {
                    sent.resultBytes = envelope.arrow.bytes
                    sent.rows = envelope.arrow.rows
                    if resultLimitActive, let op = plan.operation,
                        let refusal = accounting.chargeResults(op, bytes: envelope.arrow.bytes, rows: envelope.arrow.rows)
                    {
                        actions.append(.interruptOperation(op, backendSessionID: plan.route.backendSessionID, backend: plan.route.backend, placement: placement))
                        actions.append(.endOperation(op, refusal.error))
                        return refuse(.quota(refusal), now: now, into: &actions)
                    }
                }
                if method == .interrupt { admitted?.interruptedIDs += envelope.interruptedIDs }
                edits = plan.responseRewrite.edits(for: envelope, method: method)
            }
            responseCredit.accommodate(messageBytes: length, ceiling: policy.maxBufferedPerStream)
            responseCredit.wrote(length)
            unflushedResponses.append(sent)
            actions.append(.sendResponse(edits: edits))
        case .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting:
            impossible("a response message", now: now, into: &actions)
        }
    }

    mutating func drainedResponses(partialBytes: Int, now: Double, into actions: inout [Action]) {
        switch phase {
        case .forwarding:
            if backendEndedWithData {
                // DATA with END_STREAM and no trailers is not gRPC.
                backendOpen = false
                return refuse(CallRefusal(SparkgateError(.internal, "backend '\(summary.backend ?? "")' ended the response without a status"), reason: "backend_no_status", metric: .backend), now: now, into: &actions)
            }
            let bytes = responseCredit.take()
            if bytes > 0 { actions.append(.returnResponseCredit(bytes: bytes)) }
        case .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting:
            impossible("the end of the response messages", now: now, into: &actions)
        }
    }

    mutating func receivedResponseTrailers(_ metadata: Metadata, _ status: BackendStatus, now: Double, into actions: inout [Action]) {
        switch phase {
        case .forwarding:
            backendOpen = false
            if releaseIsMoot(status), unflushedHead == unflushedResponses.count, summary.responseBytes == 0 {
                return answerLocally(ReleaseExecuteAnswer.message(sessionID: plan?.sessionIDAsSent ?? ""), note: "session_closed", backendStatus: status, now: now, into: &actions)
            }
            actions.append(.forwardTrailers(metadata, trailersOnly: !responseStarted))
            if !clientEnded { actions.append(.stopClient) }
            finish(code: status.code, refusal: nil, backendStatus: status, now: now, into: &actions)
        case .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting:
            impossible("response trailers", now: now, into: &actions)
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
        if unflushedHead < unflushedResponses.count {
            let out = unflushedResponses[unflushedHead]
            unflushedHead += 1
            summary.responseBytes += out.length
            summary.resultBytes += out.resultBytes
            summary.rows += out.rows
            if unflushedHead == unflushedResponses.count {
                unflushedResponses.removeAll(keepingCapacity: true)
                unflushedHead = 0
            }
        }
        let wasHeld = responseCredit.isHeld
        responseCredit.flushed(bytes)
        guard phase == .forwarding else { return }
        let credit = responseCredit.take(force: wasHeld && !responseCredit.isHeld)
        if credit > 0 { actions.append(.returnResponseCredit(bytes: credit)) }
    }

    mutating func backendReset(_ reset: BackendReset, now: Double, into actions: inout [Action]) {
        switch phase {
        case .connecting, .forwarding:
            backendOpen = false
            let backend = summary.backend ?? ""
            let error: SparkgateError
            switch reset {
            case .refusedStream: error = .unavailable("backend '\(backend)' refused the stream; retry shortly")
            case .cancel: error = SparkgateError(.cancelled, "backend '\(backend)' cancelled the call")
            case .enhanceYourCalm: error = .resourceExhausted("backend '\(backend)' is overloaded (ENHANCE_YOUR_CALM)")
            case .other(let code): error = SparkgateError(.internal, "backend '\(backend)' reset the stream (\(code))")
            case .connectionLost: error = .unavailable("lost the connection to backend '\(backend)' during the call; retry")
            }
            refuse(CallRefusal(error, reason: "backend_closed", metric: .backend), now: now, into: &actions)
        case .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting:
            impossible("a backend reset", now: now, into: &actions)
        }
    }
}
