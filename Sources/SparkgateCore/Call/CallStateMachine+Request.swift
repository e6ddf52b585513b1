extension CallStateMachine {
    // MARK: Head and authentication

    mutating func receivedHead(_ head: RequestHead, endStream: Bool, bufferedBytes: Int, now: Double, into actions: inout [Action]) {
        guard phase == .idle else {
            // A second HEADERS frame from the client can only end the request.
            return receivedRequestData(bytes: 0, endStream: endStream, now: now, into: &actions)
        }
        if endStream { clientEnded = true }
        if bufferedBytes > policy.maxBufferedBytes {
            return refuse(CallRefusal(
                .resourceExhausted("Sparkgate holds \(QuotaRefusal.bytes(bufferedBytes)) for calls in flight, over limits.max_buffered_bytes (\(QuotaRefusal.bytes(policy.maxBufferedBytes))); retry shortly", retryAfter: .seconds(1)),
                reason: LimitEvent.bufferedBytes.rawValue, metric: .limit(.bufferedBytes)), now: now, into: &actions)
        }
        if head.headerBytes > policy.maxRequestHeaderBytes {
            let tokenBytes: Int
            if case .success(let token) = BearerToken.extract(from: head.authorization) {
                tokenBytes = token.utf8.count
            } else {
                tokenBytes = head.authorization.reduce(0) { $0 + $1.utf8.count }
            }
            if tokenBytes > policy.maxTokenBytes {
                return refuse(.auth(AuthFailure(.tooLarge, "token of \(tokenBytes) bytes is over auth.max_token_bytes (\(policy.maxTokenBytes))")), now: now, into: &actions)
            }
            return refuse(CallRefusal(
                .resourceExhausted("the request headers are \(head.headerBytes) bytes, over limits.max_request_header_bytes (\(policy.maxRequestHeaderBytes)); send less metadata"),
                reason: LimitEvent.headerBytes.rawValue, metric: .limit(.headerBytes)), now: now, into: &actions)
        }
        switch head.validate() {
        case .failure(let error):
            return refuse(CallRefusal(error, reason: "bad_request"), now: now, into: &actions)
        case .success(let m):
            method = m
            summary.method = m.name
        }
        if let timeout = head.timeout {
            timeoutText = head.timeoutText
            actions.append(.startDeadline(timeout))
        }
        switch BearerToken.extract(from: head.authorization) {
        case .failure(let failure):
            refuse(.auth(failure), now: now, into: &actions)
        case .success(let token):
            phase = .authenticating
            actions.append(.authenticate(token))
        }
    }

    mutating func authenticated(_ token: VerifiedToken, team: SparkgateConfig.Team?, now: Double, into actions: inout [Action]) {
        switch phase {
        case .authenticating:
            summary.user = token.identity.user
            summary.team = token.identity.team
            self.token = token
            guard let team else {
                let failure = AuthFailure(.unknownTeam, "team '\(ClaimsPolicy.clipped(token.identity.team))' is not configured on this gateway; ask an operator to add it under teams")
                return refuse(.auth(failure), now: now, into: &actions)
            }
            self.team = team
            summary.backend = team.backend
            phase = .awaitingFirstMessage
            // Data that arrived during the check is in the reader.
            actions.append(.readRequests)
        case .closed:
            // The call ended while its token was being checked (the client left during a key refresh).
            break
        case .idle, .awaitingFirstMessage, .admitting, .connecting, .forwarding:
            impossible("an authentication answer", now: now, into: &actions)
        }
    }

    mutating func authenticationFailed(_ failure: AuthFailure, now: Double, into actions: inout [Action]) {
        switch phase {
        case .authenticating:
            refuse(.auth(failure), now: now, into: &actions)
        case .closed:
            break
        case .idle, .awaitingFirstMessage, .admitting, .connecting, .forwarding:
            impossible("an authentication answer", now: now, into: &actions)
        }
    }

    // MARK: Request bytes and messages

    mutating func receivedRequestData(bytes: Int, endStream: Bool, now: Double, into actions: inout [Action]) {
        requestReceived += bytes
        switch phase {
        case .idle, .authenticating:
            // Held, window and all, until the caller is known.
            if endStream { clientEnded = true }
            requestCredit.received(bytes)
        case .awaitingFirstMessage, .admitting, .connecting:
            if endStream { clientEnded = true }
            requestCredit.received(bytes)
            actions.append(.readRequests)
            returnFirstMessageCredit(force: false, into: &actions)
        case .forwarding:
            if endStream { clientEnded = true }
            requestCredit.received(bytes)
            actions.append(.readRequests)
            returnRequestCredit(force: false, into: &actions)
        case .closed:
            // Sent before the client saw the end of the call: dropped, and its window given back at once.
            if bytes > 0 {
                requestReturned += bytes
                actions.append(.returnRequestCredit(bytes: bytes, stream: false))
            }
        }
    }

    mutating func receivedRequestPrefix(length: Int, compressed: Bool, now: Double, into actions: inout [Action]) {
        switch phase {
        case .awaitingFirstMessage, .admitting, .connecting, .forwarding:
            guard !compressed else {
                return refuse(CallRefusal(SparkgateError(.unimplemented, "compressed request messages are not supported; turn off gRPC compression in the client"), reason: "compressed"), now: now, into: &actions)
            }
            guard length <= policy.maxMessageBytes else {
                return refuse(CallRefusal(.resourceExhausted("request message of \(length) bytes is larger than max_message_bytes (\(policy.maxMessageBytes)); split the data or raise the limit"), reason: "message_too_large"), now: now, into: &actions)
            }
            if let team, let identity = token?.identity, length > team.quotas.maxRequestBytes {
                return refuse(.quota(QuotaRefusal(.requestBytes, "team \(identity.team) allows request messages of \(team.quotas.maxRequestBytes) bytes (max_request_bytes); this one has \(length)")), now: now, into: &actions)
            }
            guard requestMessages == 0 || method.isClientStreaming else {
                return refuse(CallRefusal(.invalidArgument("\(method.name) takes exactly one request message; this request sent more"), reason: "extra_message"), now: now, into: &actions)
            }
            requestMessageLength = length + 5
            if requestMessages == 0 {
                firstMessageLength = length + 5
                returnFirstMessageCredit(force: true, into: &actions)
            }
        case .idle, .authenticating:
            impossible("a request message", now: now, into: &actions)
        case .closed:
            break
        }
    }

    mutating func receivedRequestMessage(_ read: Result<RequestEnvelope, WireError>, now: Double, accounting: inout some CallAccounting, into actions: inout [Action]) {
        switch phase {
        case .awaitingFirstMessage, .admitting, .connecting, .forwarding:
            guard requestMessages == 0 || method.isClientStreaming else {
                return refuse(CallRefusal(.invalidArgument("\(method.name) takes exactly one request message; this request sent more"), reason: "extra_message"), now: now, into: &actions)
            }
            requestMessages += 1
            let length = requestMessageLength
            summary.requestBytes += length
            let envelope: RequestEnvelope
            switch read {
            case .success(let e): envelope = e
            case .failure(let error):
                return refuse(CallRefusal(.invalidArgument("the \(method.name) request is not a valid protobuf message (\(error)); is the client speaking Spark Connect?"), reason: "malformed"), now: now, into: &actions)
            }
            if phase == .awaitingFirstMessage {
                return decideFirstMessage(envelope, length: length, now: now, into: &actions)
            }
            guard envelope.sessionID == plan?.session.clientSessionID else {
                return refuse(CallRefusal(.invalidArgument("every message of a stream must carry the same session_id"), reason: "bad_session"), now: now, into: &actions)
            }
            if phase == .forwarding {
                guard chargeArtifacts(envelope.artifactBytes, accounting: &accounting, now: now, into: &actions) else { return }
                sendRequest(length: length, endStream: false, into: &actions)
            } else {
                held.append(HeldRequest(artifactBytes: envelope.artifactBytes, length: length, charged: false))
            }
        case .idle, .authenticating:
            impossible("a request message", now: now, into: &actions)
        case .closed:
            break
        }
    }

    private mutating func decideFirstMessage(_ envelope: RequestEnvelope, length: Int, now: Double, into actions: inout [Action]) {
        guard let token, let team else { return impossible("a first message without a caller", now: now, into: &actions) }
        let context = FirstMessageContext(
            method: method, identity: token.identity, team: team, policy: policy, draining: draining, endedReason: endedReason, randomUUID: randomUUID)
        summary.sessionID = envelope.sessionID.map { String($0.prefix(64)) }
        summary.clientType = envelope.clientType.map { String($0.prefix(256)) }
        switch FirstMessageDecision.decide(envelope, context) {
        case .failure(let refusal):
            refuse(refusal, now: now, into: &actions)
        case .success(let plan):
            self.plan = plan
            summary.backendSessionID = plan.route.backendSessionID
            summary.operationID = plan.admission.operationID
            held.append(HeldRequest(artifactBytes: envelope.artifactBytes, length: length, charged: true))
            // The message is whole: the rest of its window goes back now, and nothing more until it is sent.
            returnFirstMessageCredit(force: true, into: &actions)
            phase = .admitting
            admissionPending = true
            actions.append(.admit)
        }
    }

    mutating func drainedRequests(partialBytes: Int, now: Double, into actions: inout [Action]) {
        switch phase {
        case .awaitingFirstMessage, .admitting, .connecting, .forwarding:
            guard clientEnded, !requestComplete else { return }
            if partialBytes > 0 {
                return refuse(CallRefusal(.invalidArgument("the request ended in the middle of a message (\(partialBytes) bytes of a message were sent)"), reason: "truncated"), now: now, into: &actions)
            }
            if requestMessages == 0 {
                return refuse(CallRefusal(.invalidArgument("the request ended without a message; every \(method.name) call sends one"), reason: "no_message"), now: now, into: &actions)
            }
            requestComplete = true
            if phase == .forwarding && !sentEnd {
                sentEnd = true
                actions.append(.endRequest)
            }
        case .idle, .authenticating:
            impossible("the end of the request messages", now: now, into: &actions)
        case .closed:
            break
        }
    }

    mutating func flushedRequest(bytes: Int, into actions: inout [Action]) {
        let wasHeld = requestCredit.isHeld
        requestCredit.flushed(bytes)
        // Flushes complete after the call may have ended; window then went back with the end.
        guard phase == .forwarding else { return }
        // A flush that ends a hold sends what was held back at once; otherwise window goes in batches.
        returnRequestCredit(force: wasHeld && !requestCredit.isHeld, into: &actions)
    }

    // MARK: Admission and the backend stream

    mutating func admissionDecided(_ result: Result<AdmissionGrant, QuotaOrPolicyRefusal>, now: Double, accounting: inout some CallAccounting, into actions: inout [Action]) {
        let answered = admissionPending
        admissionPending = false
        switch phase {
        case .admitting:
            guard answered, let plan else { return impossible("an admission answer nobody asked for", now: now, into: &actions) }
            let grant: AdmissionGrant
            switch result {
            case .failure(let refusal): return refuse(.ledger(refusal), now: now, into: &actions)
            case .success(let g): grant = g
            }
            admitted = AdmittedCall(
                session: plan.session, method: method, operation: plan.operation,
                reattachable: plan.admission.reattachable || method == .reattachExecute, releaseAll: plan.releaseAll,
                releasedOperationID: plan.releaseAll ? plan.admission.operationID : nil)
            admitted?.operationInstance = grant.operationInstance
            resultLimitActive = grant.operationResultLimit > 0
            placement = grant.placement
            if grant.alreadyReleased {
                return answerLocally(ReleaseExecuteAnswer.message(sessionID: plan.sessionIDAsSent), note: "already_released", now: now, into: &actions)
            }
            if plan.artifactBytes > 0, let refusal = accounting.chargeArtifacts(plan.session, bytes: plan.artifactBytes, limit: plan.quotas.maxArtifactBytesPerSession) {
                return refuse(.quota(refusal), now: now, into: &actions)
            }
            if method.isServerStreaming || method.isClientStreaming {
                actions.append(.register(plan.session, plan.operation))
            }
            phase = .connecting
            backendOpen = true
            actions.append(.openBackend(BackendTarget(
                route: plan.route, session: plan.session, placement: grant.placement, placementRecorded: grant.placementRecorded,
                sessionIdleSeconds: plan.quotas.sessionIdleSeconds)))
        case .closed:
            // The call ended while the ledger decided: account for it now, with what the ledger recorded.
            guard answered, var outcome = pendingOutcome else { return }
            pendingOutcome = nil
            if case .success(let grant) = result, let plan {
                outcome.admitted = AdmittedCall(
                    session: plan.session, method: method, operation: plan.operation,
                    reattachable: plan.admission.reattachable || method == .reattachExecute, releaseAll: false, releasedOperationID: nil)
                outcome.admitted?.operationInstance = grant.operationInstance
            }
            actions.append(.finish(outcome))
        case .idle, .authenticating, .awaitingFirstMessage, .connecting, .forwarding:
            impossible("an admission answer", now: now, into: &actions)
        }
    }

    mutating func backendOpened(now: Double, accounting: inout some CallAccounting, into actions: inout [Action]) {
        switch phase {
        case .connecting:
            phase = .forwarding
            let pending = held
            held = []
            for (index, item) in pending.enumerated() {
                if !item.charged {
                    guard chargeArtifacts(item.artifactBytes, accounting: &accounting, now: now, into: &actions) else { return }
                }
                let last = index == pending.count - 1
                // A unary request's one message carries END_STREAM; a stream's only once every message is read.
                let end = last && clientEnded && (requestComplete || !method.isClientStreaming)
                sendRequest(length: item.length, endStream: end, into: &actions)
            }
            actions.append(.readRequests)
            returnRequestCredit(force: true, into: &actions)
        case .closed:
            // The call ended while the stream was opening: the backend must not run it.
            actions.append(.resetBackend)
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .forwarding:
            impossible("a backend stream opening", now: now, into: &actions)
        }
    }

    mutating func backendOpenFailed(_ error: SparkgateError, now: Double, into actions: inout [Action]) {
        switch phase {
        case .connecting:
            backendOpen = false
            refuse(CallRefusal(error, reason: "backend_unreachable", metric: .backend), now: now, into: &actions)
        case .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .forwarding:
            impossible("a backend stream failing to open", now: now, into: &actions)
        }
    }

    mutating func backendSessionLost(_ error: SparkgateError, now: Double, into actions: inout [Action]) {
        switch phase {
        case .connecting:
            backendOpen = false
            if method == .releaseSession, let plan {
                // ReleaseSessionResponse carries session_id in field 1, as ReleaseExecuteResponse does.
                return answerLocally(ReleaseExecuteAnswer.message(sessionID: plan.sessionIDAsSent), note: "engine_gone", now: now, into: &actions)
            }
            refuse(CallRefusal(error, reason: "engine_gone", metric: .backend), now: now, into: &actions)
        case .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .forwarding:
            impossible("a lost backend session", now: now, into: &actions)
        }
    }

    // MARK: Helpers

    private mutating func sendRequest(length: Int, endStream: Bool, into actions: inout [Action]) {
        if endStream { sentEnd = true }
        requestCredit.accommodate(messageBytes: length, ceiling: policy.maxBufferedPerStream)
        requestCredit.wrote(length)
        actions.append(.sendRequest(endStream: endStream))
    }

    /// AddArtifacts upload bytes of a later message; false when the call was refused for them.
    private mutating func chargeArtifacts(_ bytes: Int, accounting: inout some CallAccounting, now: Double, into actions: inout [Action]) -> Bool {
        guard method == .addArtifacts, bytes > 0, let plan else { return true }
        if let refusal = accounting.chargeArtifacts(plan.session, bytes: bytes, limit: plan.quotas.maxArtifactBytesPerSession) {
            refuse(.quota(refusal), now: now, into: &actions)
            return false
        }
        return true
    }

    /// While the first message is read: window for that message's bytes only.
    mutating func returnFirstMessageCredit(force: Bool, into actions: inout [Action]) {
        guard let cap = firstMessageLength else { return }
        let bytes = requestCredit.take(force: force, limit: cap - requestReturned)
        emitRequestCredit(bytes, into: &actions)
    }

    mutating func returnRequestCredit(force: Bool, into actions: inout [Action]) {
        emitRequestCredit(requestCredit.take(force: force), into: &actions)
    }

    private mutating func emitRequestCredit(_ bytes: Int, into actions: inout [Action]) {
        guard bytes > 0 else { return }
        requestReturned += bytes
        actions.append(.returnRequestCredit(bytes: bytes, stream: !clientEnded))
    }
}
