extension CallStateMachine {
    mutating func clientWentAway(now: Double, into actions: inout [Action]) {
        switch phase {
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting, .forwarding:
            clientEnded = true
            if backendOpen {
                backendOpen = false
                actions.append(.resetBackend)
            }
            finish(code: .cancelled, refusal: CallRefusal(SparkgateError(.cancelled, "the client cancelled the call"), reason: "client_cancelled"), backendStatus: nil, now: now, into: &actions)
        case .closed:
            break
        }
    }

    mutating func deadlineExpired(now: Double, into actions: inout [Action]) {
        guard phase != .closed else { return }
        refuse(CallRefusal(SparkgateError(.deadlineExceeded, "the call's deadline (grpc-timeout \(timeoutText ?? "")) passed"), reason: "deadline"), now: now, into: &actions)
    }

    mutating func terminated(_ error: SparkgateError, reason: String, now: Double, into actions: inout [Action]) {
        guard phase != .closed else { return }
        refuse(CallRefusal(error, reason: reason), now: now, into: &actions)
    }

    /// Ends the call with Sparkgate's own status: the backend stream is reset, the client gets trailers
    /// (trailers-only when no response began) and, if it is still sending, RST_STREAM(NO_ERROR).
    mutating func refuse(_ refusal: CallRefusal, now: Double, into actions: inout [Action]) {
        guard phase != .closed else { return }
        if backendOpen {
            backendOpen = false
            actions.append(.resetBackend)
        }
        actions.append(.sendStatus(refusal.error, trailersOnly: !responseStarted))
        if !clientEnded { actions.append(.stopClient) }
        finish(code: refusal.error.code, refusal: refusal, backendStatus: nil, now: now, into: &actions)
    }

    /// Answers the call without the backend, with OK and this response message (after a response head, when
    /// the backend's was forwarded already).
    mutating func answerLocally(_ message: [UInt8], note: String, backendStatus: BackendStatus? = nil, now: Double, into actions: inout [Action]) {
        actions.append(.answerLocally(message, withHead: !responseStarted))
        responseStarted = true
        summary.responseBytes += message.count + 5
        if !clientEnded { actions.append(.stopClient) }
        finish(code: .ok, refusal: nil, backendStatus: backendStatus, note: note, now: now, into: &actions)
    }

    /// The call is over: what the client sent is given back at the connection level, and the outcome goes
    /// to accounting (or waits for the ledger's answer, when the ledger is still deciding).
    /// `note` is the audit reason of a call that was not refused (an answer Sparkgate gave itself).
    mutating func finish(code: GRPCStatusCode, refusal: CallRefusal?, backendStatus: BackendStatus?, note: String? = nil, now: Double, into actions: inout [Action]) {
        let owed = requestReceived - requestReturned
        if owed > 0 {
            requestReturned += owed
            actions.append(.returnRequestCredit(bytes: owed, stream: false))
        }
        let awaitingAdmission = admissionPending
        phase = .closed
        held = []
        // Messages still on their way leave ahead of the trailers; only a client that went away never gets them.
        if refusal?.reason != "client_cancelled" {
            for out in unflushedResponses[unflushedHead...] {
                summary.responseBytes += out.length
                summary.resultBytes += out.resultBytes
                summary.rows += out.rows
            }
        }
        unflushedResponses = []
        unflushedHead = 0
        summary.status = code.name
        // Every non-OK line says why: Sparkgate's reason, or that the backend answered so (and its error class).
        summary.reason = refusal?.reason ?? note ?? (code == .ok ? nil : "backend_error")
        summary.errorClass = backendStatus?.errorClass
        summary.durationSeconds = max(0, now - startedAt)
        var outcome = CallOutcome(summary: summary, code: code)
        outcome.refusal = refusal
        outcome.backendStatus = backendStatus
        outcome.admitted = admitted
        outcome.identity = token?.identity
        outcome.firstResponseSeconds = method == .executePlan ? firstResponseSeconds : nil
        if awaitingAdmission {
            pendingOutcome = outcome
        } else {
            actions.append(.finish(outcome))
        }
    }
}
