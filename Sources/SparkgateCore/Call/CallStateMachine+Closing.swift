extension CallStateMachine {
    /// The backend stream is open, or opening.
    var backendOpen: Bool {
        switch phase {
        case .connecting, .forwarding: true
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .closing, .closed: false
        }
    }

    mutating func clientWentAway(now: Double, into actions: inout [Action]) {
        guard !isClosed else { return }
        request.clientEnded = true
        if backendOpen { actions.append(.resetBackend) }
        if response.sawResultComplete && audit.allFlushed {
            // PySpark stops reading once it has result_complete and drops the stream before the trailers
            // come: the client left with its whole result, which is a success, not a cancellation.
            return finish(
                code: .ok, refusal: nil, backendStatus: nil, note: "client_left_after_result", now: now, into: &actions)
        }
        finish(
            code: .cancelled,
            refusal: CallRefusal(
                SparkgateError(.cancelled, "the client cancelled the call"), reason: "client_cancelled"),
            backendStatus: nil, now: now, into: &actions)
    }

    mutating func deadlineExpired(now: Double, into actions: inout [Action]) {
        guard !isClosed else { return }
        refuse(
            CallRefusal(
                SparkgateError(.deadlineExceeded, "the call's deadline (grpc-timeout \(timeoutText ?? "")) passed"),
                reason: "deadline"), now: now, into: &actions)
    }

    mutating func terminated(_ error: SparkgateError, reason: String, now: Double, into actions: inout [Action]) {
        guard !isClosed else { return }
        refuse(CallRefusal(error, reason: reason), now: now, into: &actions)
    }

    /// Ends the call with Sparkgate's own status: the backend stream is reset (unless the backend ended it),
    /// the client gets trailers (trailers-only when no response began) and, if it is still sending,
    /// RST_STREAM(NO_ERROR).
    /// `ledgerAnswered`: the refusal is the ledger's own answer, so nothing is left to wait for.
    mutating func refuse(
        _ refusal: CallRefusal, backendEnded: Bool = false, ledgerAnswered: Bool = false, now: Double,
        into actions: inout [Action]
    ) {
        guard !isClosed else { return }
        if backendOpen && !backendEnded { actions.append(.resetBackend) }
        actions.append(.sendStatus(refusal.error, trailersOnly: !response.started))
        if !request.clientEnded { actions.append(.stopClient) }
        finish(
            code: refusal.error.code, refusal: refusal, backendStatus: nil, ledgerAnswered: ledgerAnswered, now: now,
            into: &actions)
    }

    /// Answers the call without the backend, with OK and this response message (after a response head, when
    /// the backend's was forwarded already). `admission` is what the ledger granted, when the phase does not
    /// hold it yet.
    mutating func answerLocally(
        _ message: [UInt8], note: String, backendStatus: BackendStatus? = nil, admission: Admission? = nil, now: Double,
        into actions: inout [Action]
    ) {
        let ledgerAnswered = admission != nil
        actions.append(.answerLocally(message, withHead: !response.started))
        response.started = true
        audit.summary.responseBytes += message.count + 5
        if !request.clientEnded { actions.append(.stopClient) }
        finish(
            code: .ok, refusal: nil, backendStatus: backendStatus, note: note, admission: admission,
            ledgerAnswered: ledgerAnswered, now: now, into: &actions)
    }

    /// The call is over: what the client sent is given back at the connection level, and the outcome goes
    /// to accounting (or waits for the ledger's answer, when the ledger is still deciding).
    /// `note` is the audit reason of a call that was not refused (an answer Sparkgate gave itself).
    mutating func finish(
        code: GRPCStatusCode, refusal: CallRefusal?, backendStatus: BackendStatus?, note: String? = nil,
        admission: Admission? = nil,
        ledgerAnswered: Bool = false, now: Double, into actions: inout [Action]
    ) {
        let owed = request.owed
        if owed > 0 {
            request.returned += owed
            actions.append(.returnRequestCredit(bytes: owed, stream: false))
        }
        request.queued = []
        response.awaitingCharge = []
        // Messages still on their way leave ahead of the trailers; only a client that went away never gets them.
        audit.close(clientGone: refusal?.reason == "client_cancelled")
        audit.summary.status = code.name
        // Every non-OK line says why: Sparkgate's reason, or that the backend answered so (and its error class).
        audit.summary.reason = refusal?.reason ?? note ?? (code == .ok ? nil : "backend_error")
        audit.summary.errorClass = backendStatus?.errorClass
        audit.summary.durationSeconds = max(0, now - startedAt)
        var outcome = CallOutcome(summary: audit.summary, code: code)
        outcome.method = method
        outcome.refusal = refusal
        outcome.backendStatus = backendStatus
        outcome.identity = identity
        outcome.firstResponseSeconds = method == .executePlan ? response.firstResponseSeconds : nil
        var granted = admission
        switch phase {
        case .connecting(_, _, let a), .forwarding(_, _, let a): granted = granted ?? a
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .closing, .closed: break
        }
        if var call = granted?.call {
            call.sawResultComplete = response.sawResultComplete
            call.interruptedIDs = response.interruptedIDs
            outcome.admitted = call
        }
        if case .admitting(_, let plan) = phase, admissionAsked, !ledgerAnswered {
            // The ledger is deciding: the outcome waits for its answer.
            phase = .closing(outcome, plan)
        } else {
            phase = .closed
            actions.append(.finish(outcome))
        }
    }
}
