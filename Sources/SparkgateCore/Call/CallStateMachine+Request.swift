extension CallStateMachine {
    // MARK: Head and authentication

    mutating func receivedHead(
        _ head: RequestHead, endStream: Bool, bufferedBytes: Int, now: Double, into actions: inout [Action]
    ) {
        guard case .idle = phase else {
            // A second HEADERS frame from the client can only end the request.
            return receivedRequestData(bytes: 0, endStream: endStream, now: now, into: &actions)
        }
        if endStream { request.clientEnded = true }
        if bufferedBytes > policy.maxBufferedBytes {
            return refuse(
                CallRefusal(
                    .resourceExhausted(
                        "Sparkgate holds \(QuotaRefusal.bytes(bufferedBytes)) for calls in flight, over limits.max_buffered_bytes (\(QuotaRefusal.bytes(policy.maxBufferedBytes))); retry shortly",
                        retryAfter: .seconds(1)),
                    reason: LimitEvent.bufferedBytes.rawValue, metric: .limit(.bufferedBytes)), now: now, into: &actions
            )
        }
        if head.headerBytes > policy.maxRequestHeaderBytes {
            let tokenBytes: Int
            if case .success(let token) = BearerToken.extract(from: head) {
                tokenBytes = token.utf8.count
            } else {
                tokenBytes = BearerToken.size(of: head)
            }
            if tokenBytes > policy.maxTokenBytes {
                return refuse(
                    .auth(
                        AuthFailure(
                            .tooLarge,
                            "token of \(tokenBytes) bytes is over auth.max_token_bytes (\(policy.maxTokenBytes))")),
                    now: now, into: &actions)
            }
            return refuse(
                CallRefusal(
                    .resourceExhausted(
                        "the request headers are \(head.headerBytes) bytes, over limits.max_request_header_bytes (\(policy.maxRequestHeaderBytes)); send less metadata"
                    ),
                    reason: LimitEvent.headerBytes.rawValue, metric: .limit(.headerBytes)), now: now, into: &actions)
        }
        switch head.validate() {
        case .failure(let error):
            return refuse(CallRefusal(error, reason: "bad_request"), now: now, into: &actions)
        case .success(let m):
            method = m
            audit.summary.method = m.name
        }
        if let timeout = head.timeout {
            timeoutText = head.timeoutText
            actions.append(.startDeadline(timeout))
        }
        switch BearerToken.extract(from: head) {
        case .failure(let failure):
            refuse(.auth(failure), now: now, into: &actions)
        case .success(let token):
            phase = .authenticating(token: token, refreshedKeys: false)
            actions.append(.authenticate(token))
        }
    }

    mutating func authenticated(
        _ token: VerifiedToken, team: SparkgateConfig.Team?, now: Double, into actions: inout [Action]
    ) {
        switch phase {
        case .authenticating:
            identity = token.identity
            audit.summary.user = token.identity.user
            audit.summary.team = token.identity.team
            guard let team else {
                let failure = AuthFailure(
                    .unknownTeam,
                    "team '\(ClaimsPolicy.clipped(token.identity.team))' is not configured on this gateway; ask an operator to add it under teams"
                )
                return refuse(.auth(failure), now: now, into: &actions)
            }
            audit.summary.backend = team.backend
            phase = .awaitingFirstMessage(Caller(token: token, team: team))
            // Data that arrived during the check is in the reader.
            actions.append(.readRequests)
        case .closing, .closed:
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
        case .closing, .closed:
            break
        case .idle, .awaitingFirstMessage, .admitting, .connecting, .forwarding:
            impossible("an authentication answer", now: now, into: &actions)
        }
    }

    /// A key id nobody knows may be a key the identity provider just rotated in: the key set is fetched
    /// again once (when refreshes are allowed now) and the token checked again; the request waits meanwhile.
    mutating func unknownKey(_ failure: AuthFailure, mayRefresh: Bool, now: Double, into actions: inout [Action]) {
        switch phase {
        case .authenticating(let token, let refreshed):
            guard mayRefresh, !refreshed else { return refuse(.auth(failure), now: now, into: &actions) }
            phase = .authenticating(token: token, refreshedKeys: true)
            actions.append(.refreshKeys)
        case .closing, .closed:
            break
        case .idle, .awaitingFirstMessage, .admitting, .connecting, .forwarding:
            impossible("an authentication answer", now: now, into: &actions)
        }
    }

    mutating func keysRefreshed(now: Double, into actions: inout [Action]) {
        switch phase {
        case .authenticating(let token, _):
            actions.append(.authenticate(token))
        case .closing, .closed:
            break
        case .idle, .awaitingFirstMessage, .admitting, .connecting, .forwarding:
            impossible("a key refresh", now: now, into: &actions)
        }
    }

    // MARK: Request bytes and messages

    mutating func receivedRequestData(bytes: Int, endStream: Bool, now: Double, into actions: inout [Action]) {
        request.received += bytes
        switch phase {
        case .idle, .authenticating:
            // Held, window and all, until the caller is known.
            if endStream { request.clientEnded = true }
            request.credit.received(bytes)
        case .awaitingFirstMessage, .admitting, .connecting:
            if endStream { request.clientEnded = true }
            request.credit.received(bytes)
            actions.append(.readRequests)
            returnFirstMessageCredit(force: false, into: &actions)
        case .forwarding:
            if endStream { request.clientEnded = true }
            request.credit.received(bytes)
            actions.append(.readRequests)
            returnRequestCredit(force: false, into: &actions)
        case .closing, .closed:
            // Sent before the client saw the end of the call: dropped, and its window given back at once.
            if bytes > 0 {
                request.returned += bytes
                actions.append(.returnRequestCredit(bytes: bytes, stream: false))
            }
        }
    }

    mutating func receivedRequestPrefix(length: Int, compressed: Bool, now: Double, into actions: inout [Action]) {
        let caller: Caller
        switch phase {
        case .awaitingFirstMessage(let c), .admitting(let c, _), .connecting(let c, _, _), .forwarding(let c, _, _):
            caller = c
        case .idle, .authenticating: return impossible("a request message", now: now, into: &actions)
        case .closing, .closed: return
        }
        guard !compressed else {
            return refuse(
                CallRefusal(
                    SparkgateError(
                        .unimplemented,
                        "compressed request messages are not supported; turn off gRPC compression in the client"),
                    reason: "compressed"), now: now, into: &actions)
        }
        guard length <= policy.maxMessageBytes else {
            return refuse(
                CallRefusal(
                    .resourceExhausted(
                        "request message of \(length) bytes is larger than max_message_bytes (\(policy.maxMessageBytes)); split the data or raise the limit"
                    ), reason: "message_too_large"), now: now, into: &actions)
        }
        if length > caller.team.quotas.maxRequestBytes {
            return refuse(
                .quota(
                    QuotaRefusal(
                        .requestBytes,
                        "team \(caller.token.identity.team) allows request messages of \(caller.team.quotas.maxRequestBytes) bytes (max_request_bytes); this one has \(length)"
                    )), now: now, into: &actions)
        }
        guard request.messages == 0 || method.isClientStreaming else {
            return refuse(
                CallRefusal(
                    .invalidArgument("\(method.name) takes exactly one request message; this request sent more"),
                    reason: "extra_message"), now: now, into: &actions)
        }
        request.messageLength = length + 5
        if request.messages == 0 {
            request.firstMessageLength = length + 5
            returnFirstMessageCredit(force: true, into: &actions)
        }
    }

    mutating func receivedRequestMessage(
        _ message: Message, _ read: Result<RequestEnvelope, WireError>, now: Double, into actions: inout [Action]
    ) {
        switch phase {
        case .awaitingFirstMessage, .admitting, .connecting, .forwarding: break
        case .idle, .authenticating: return impossible("a request message", now: now, into: &actions)
        case .closing, .closed: return
        }
        guard request.messages == 0 || method.isClientStreaming else {
            return refuse(
                CallRefusal(
                    .invalidArgument("\(method.name) takes exactly one request message; this request sent more"),
                    reason: "extra_message"), now: now, into: &actions)
        }
        request.messages += 1
        let length = request.messageLength
        audit.summary.requestBytes += length
        let envelope: RequestEnvelope
        switch read {
        case .success(let e): envelope = e
        case .failure(let error):
            return refuse(
                CallRefusal(
                    .invalidArgument(
                        "the \(method.name) request is not a valid protobuf message (\(error)); is the client speaking Spark Connect?"
                    ), reason: "malformed"), now: now, into: &actions)
        }
        switch phase {
        case .awaitingFirstMessage(let caller):
            decideFirstMessage(message, envelope, length: length, caller: caller, now: now, into: &actions)
        case .admitting(_, let plan), .connecting(_, let plan, _), .forwarding(_, let plan, _):
            guard envelope.sessionID == plan.session.clientSessionID else {
                return refuse(
                    CallRefusal(
                        .invalidArgument("every message of a stream must carry the same session_id"),
                        reason: "bad_session"), now: now, into: &actions)
            }
            let charged = !(method == .addArtifacts && envelope.artifactBytes > 0)
            request.queued.append(
                RequestFlow.Queued(
                    message: message, envelope: envelope, artifactBytes: envelope.artifactBytes, length: length,
                    charged: charged))
            if case .forwarding = phase { sendQueued(plan, endingWithLast: false, into: &actions) }
        case .idle, .authenticating, .closing, .closed:
            break
        }
    }

    private mutating func decideFirstMessage(
        _ message: Message, _ envelope: RequestEnvelope, length: Int, caller: Caller, now: Double,
        into actions: inout [Action]
    ) {
        let context = FirstMessageContext(
            method: method, identity: caller.token.identity, team: caller.team, policy: policy, draining: draining,
            randomUUID: randomUUID, backendIDs: backendIDs)
        audit.summary.sessionID = envelope.sessionID.map { String($0.prefix(64)) }
        audit.summary.clientType = envelope.clientType.map { String($0.prefix(256)) }
        switch FirstMessageDecision.decide(envelope, context) {
        case .failure(let refusal):
            refuse(refusal, now: now, into: &actions)
        case .success(let plan):
            operation = plan.operation
            audit.summary.backendSessionID = plan.route.backendSessionID
            audit.summary.operationID = plan.admission.operationID
            // Its upload bytes are charged with the admission.
            request.queued.append(
                RequestFlow.Queued(
                    message: message, envelope: envelope, artifactBytes: envelope.artifactBytes, length: length,
                    charged: true))
            // The message is whole: the rest of its window goes back now, and nothing more until it is sent.
            returnFirstMessageCredit(force: true, into: &actions)
            phase = .admitting(caller, plan)
            if method == .reattachExecute, let operation = plan.operation {
                // Sparkgate may have ended this operation between two of its streams: that is asked first.
                actions.append(.recallOperationEnd(operation))
            } else {
                askAdmission(plan, into: &actions)
            }
        }
    }

    mutating func drainedRequests(partialBytes: Int, now: Double, into actions: inout [Action]) {
        switch phase {
        case .awaitingFirstMessage, .admitting, .connecting, .forwarding: break
        case .idle, .authenticating: return impossible("the end of the request messages", now: now, into: &actions)
        case .closing, .closed: return
        }
        guard request.clientEnded, !request.complete else { return }
        if partialBytes > 0 {
            return refuse(
                CallRefusal(
                    .invalidArgument(
                        "the request ended in the middle of a message (\(partialBytes) bytes of a message were sent)"),
                    reason: "truncated"), now: now, into: &actions)
        }
        if request.messages == 0 {
            return refuse(
                CallRefusal(
                    .invalidArgument("the request ended without a message; every \(method.name) call sends one"),
                    reason: "no_message"), now: now, into: &actions)
        }
        request.complete = true
        if case .forwarding(_, let plan, _) = phase, !request.sentEnd {
            if request.queued.isEmpty {
                request.sentEnd = true
                actions.append(.endRequest)
            } else {
                // The last message still waits for its charge: it carries the end.
                sendQueued(plan, endingWithLast: true, into: &actions)
            }
        }
    }

    mutating func flushedRequest(bytes: Int, into actions: inout [Action]) {
        let wasHeld = request.credit.isHeld
        request.credit.flushed(bytes)
        // Flushes complete after the call may have ended; window then went back with the end.
        guard case .forwarding = phase else { return }
        // A flush that ends a hold sends what was held back at once; otherwise window goes in batches.
        returnRequestCredit(force: wasHeld && !request.credit.isHeld, into: &actions)
    }

    /// The ledger charged (or refused) the oldest queued AddArtifacts message.
    mutating func artifactsCharged(_ refusal: QuotaRefusal?, now: Double, into actions: inout [Action]) {
        switch phase {
        case .forwarding(_, let plan, _):
            guard request.charging else {
                return impossible("an artifact charge nobody asked for", now: now, into: &actions)
            }
            request.charging = false
            if let refusal { return refuse(.quota(refusal), now: now, into: &actions) }
            if !request.queued.isEmpty { request.queued[0].charged = true }
            sendQueued(plan, endingWithLast: request.endOnLastQueued, into: &actions)
        case .closing, .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting:
            impossible("an artifact charge", now: now, into: &actions)
        }
    }

    // MARK: Admission and the backend stream

    mutating func admissionDecided(
        _ result: Result<AdmissionGrant, QuotaOrPolicyRefusal>, now: Double, into actions: inout [Action]
    ) {
        switch phase {
        case .admitting(let caller, let plan) where admissionAsked:
            let grant: AdmissionGrant
            switch result {
            case .failure(let refusal): return refuse(.ledger(refusal), ledgerAnswered: true, now: now, into: &actions)
            case .success(let g): grant = g
            }
            var call = AdmittedCall(
                session: plan.session, method: method, operation: plan.operation,
                reattachable: plan.admission.reattachable || method == .reattachExecute, releaseAll: plan.releaseAll,
                releasedOperationID: plan.releaseAll ? plan.admission.operationID : nil)
            call.operationInstance = grant.operationInstance
            let admission = Admission(
                call: call, placement: grant.placement, resultLimited: grant.operationResultLimit > 0)
            if grant.alreadyReleased {
                return answerLocally(
                    ReleaseExecuteAnswer.message(sessionID: plan.sessionIDAsSent), note: "already_released",
                    admission: admission, now: now, into: &actions)
            }
            if method.isServerStreaming || method.isClientStreaming {
                actions.append(.register(plan.session, plan.operation))
            }
            phase = .connecting(caller, plan, admission)
            opening = BackendOpening(
                target: BackendTarget(
                    route: plan.route, session: plan.session, placement: grant.placement,
                    placementRecorded: grant.placementRecorded, sessionIdleSeconds: plan.quotas.sessionIdleSeconds),
                backend: policy.backends[plan.route.backend])
            take(opening!.start(), now: now, into: &actions)
        case .closing(var outcome, let plan):
            // The call ended while the ledger decided: account for it now, with what the ledger recorded.
            if case .success(let grant) = result {
                var call = AdmittedCall(
                    session: plan.session, method: method, operation: plan.operation,
                    reattachable: plan.admission.reattachable || method == .reattachExecute, releaseAll: false,
                    releasedOperationID: nil)
                call.operationInstance = grant.operationInstance
                outcome.admitted = call
            }
            phase = .closed
            actions.append(.finish(outcome))
        case .closed:
            // Nothing was asked of the ledger: a stray answer changes nothing.
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .connecting, .forwarding:
            impossible("an admission answer", now: now, into: &actions)
        }
    }

    mutating func backendOpened(now: Double, into actions: inout [Action]) {
        switch phase {
        case .connecting(let caller, let plan, let admission):
            phase = .forwarding(caller, plan, admission)
            // A unary request's one message carries END_STREAM; a stream's only once every message is read.
            request.endOnLastQueued = request.clientEnded && (request.complete || !method.isClientStreaming)
            sendQueued(plan, endingWithLast: request.endOnLastQueued, into: &actions)
            actions.append(.readRequests)
            returnRequestCredit(force: true, into: &actions)
        case .closing, .closed:
            // The call ended while the stream was opening: the backend must not run it.
            actions.append(.resetBackend)
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .forwarding:
            impossible("a backend stream opening", now: now, into: &actions)
        }
    }

    mutating func backendOpenFailed(_ error: SparkgateError, now: Double, into actions: inout [Action]) {
        switch phase {
        case .connecting:
            refuse(
                CallRefusal(error, reason: "backend_unreachable", metric: .backend), backendEnded: true, now: now,
                into: &actions)
        case .closing, .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .forwarding:
            impossible("a backend stream failing to open", now: now, into: &actions)
        }
    }

    mutating func backendSessionLost(_ error: SparkgateError, now: Double, into actions: inout [Action]) {
        switch phase {
        case .connecting(_, let plan, _):
            if method == .releaseSession {
                // ReleaseSessionResponse carries session_id in field 1, as ReleaseExecuteResponse does.
                return answerLocally(
                    ReleaseExecuteAnswer.message(sessionID: plan.sessionIDAsSent), note: "engine_gone", now: now,
                    into: &actions)
            }
            refuse(
                CallRefusal(error, reason: "engine_gone", metric: .backend), backendEnded: true, now: now,
                into: &actions)
        case .closing, .closed:
            break
        case .idle, .authenticating, .awaitingFirstMessage, .admitting, .forwarding:
            impossible("a lost backend session", now: now, into: &actions)
        }
    }

    // MARK: Helpers

    /// Sends queued messages in order, until one waits for its AddArtifacts charge (asked for here, once).
    /// With `endingWithLast`, the last message carries END_STREAM.
    private mutating func sendQueued(_ plan: AdmissionPlan, endingWithLast: Bool, into actions: inout [Action]) {
        request.endOnLastQueued = endingWithLast
        while let next = request.queued.first {
            guard next.charged else {
                if !request.charging {
                    request.charging = true
                    actions.append(
                        .chargeArtifacts(
                            plan.session, bytes: next.artifactBytes, limit: plan.quotas.maxArtifactBytesPerSession))
                }
                return
            }
            request.queued.removeFirst()
            sendRequest(
                next, endStream: endingWithLast && request.queued.isEmpty, rewrite: plan.rewrite, into: &actions)
        }
    }

    private mutating func sendRequest(
        _ queued: RequestFlow<Message>.Queued, endStream: Bool, rewrite: RequestRewrite, into actions: inout [Action]
    ) {
        if endStream { request.sentEnd = true }
        request.credit.accommodate(messageBytes: queued.length, ceiling: policy.maxBufferedPerStream)
        request.credit.wrote(queued.length)
        actions.append(.sendRequest(queued.message, queued.envelope, rewrite, endStream: endStream))
    }

    /// While the first message is read: window for that message's bytes only.
    mutating func returnFirstMessageCredit(force: Bool, into actions: inout [Action]) {
        guard let cap = request.firstMessageLength else { return }
        let bytes = request.credit.take(force: force, limit: cap - request.returned)
        emitRequestCredit(bytes, into: &actions)
    }

    mutating func returnRequestCredit(force: Bool, into actions: inout [Action]) {
        emitRequestCredit(request.credit.take(force: force), into: &actions)
    }

    private mutating func emitRequestCredit(_ bytes: Int, into actions: inout [Action]) {
        guard bytes > 0 else { return }
        request.returned += bytes
        actions.append(.returnRequestCredit(bytes: bytes, stream: !request.clientEnded))
    }
}
