import NIOCore
import NIOHPACK
import NIOHTTP2
import SparkgateAuth
import SparkgateCore

extension ProxyCall {
    // MARK: Head and authentication

    func receivedHead(_ headers: HPACKHeaders, endStream: Bool) {
        clientHeaders = headers
        for (name, value, _) in headers { head.add(name: name, value: value) }
        switch head.validate() {
        case .failure(let error):
            return refuse(error, reason: "bad_request")
        case .success(let m):
            method = m
            summary.method = m.name
        }
        if let timeout = head.timeout {
            let nanos = max(0, min(timeout.components.seconds, 10 * 86_400)) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
            deadline = eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(nanos)) { [self] in
                refuse(SparkgateError(.deadlineExceeded, "the call's deadline (grpc-timeout \(head.timeoutText ?? "")) passed"), reason: "deadline")
                frontend.loop.flushDirty()
            }
        }
        if endStream { clientEnded = true }
        let token: Substring
        switch BearerToken.extract(from: head.authorization) {
        case .success(let t): token = t
        case .failure(let failure): return refuseAuth(failure)
        }
        authenticate(token, refreshed: false)
    }

    func authenticate(_ token: Substring, refreshed: Bool) {
        switch state.authenticator.authenticate(token, now: WallClock.now()) {
        case .verified(let v):
            authorized(v)
        case .failed(let failure):
            refuseAuth(failure)
        case .unknownKey(let kid):
            let refresher = runtime.keyRefresher
            guard !refreshed, refresher.mayRefresh(now: WallClock.now()) else {
                return refuseAuth(Authenticator.unknownKeyFailure(kid))
            }
            // A key id nobody knows may be a key the identity provider just rotated in: refresh the JWKS
            // once (rate-limited) and try again, without reading more of the request meanwhile.
            phase = .authorizing
            let owned = String(token)
            let refreshed = eventLoop.makePromise(of: Void.self)
            refreshed.completeWithTask { await refresher.refreshNow() }
            refreshed.futureResult.assumeIsolated().whenComplete { [self] _ in
                guard phase == .authorizing else { return }
                phase = .head
                authenticate(owned[...], refreshed: true)
                if phase == .awaitingFirstMessage {
                    // Data that arrived while the keys were being fetched is in the reader.
                    drainRequests()
                    if clientEnded { receivedClientEnd(force: true) }
                }
                frontend.loop.flushDirty()
            }
        }
    }

    func refuseAuth(_ failure: AuthFailure) {
        runtime.metrics.authFailure(failure.reason)
        refuse(failure.error, reason: failure.reason.rawValue)
    }

    private func authorized(_ token: VerifiedToken) {
        verified = token
        summary.user = token.identity.user
        summary.team = token.identity.team
        guard let team = state.config.team(token.identity.team) else {
            let failure = AuthFailure(.unknownTeam, "team '\(ClaimsPolicy.clipped(token.identity.team))' is not configured on this gateway; ask an operator to add it under teams")
            return refuseAuth(failure)
        }
        self.team = team
        backendName = team.backend
        summary.backend = team.backend
        phase = .awaitingFirstMessage
    }

    // MARK: Request messages

    func receivedRequestData(_ buffer: ByteBuffer, endStream: Bool) {
        guard phase != .closed else { return }
        if phase == .head || phase == .authorizing {
            // DATA before authentication finished: hold it in the reader; it is read after.
            requests.append(buffer)
            if endStream { clientEnded = true }
            return
        }
        requests.append(buffer)
        // Known before the messages are sent on, so a unary request leaves as one DATA frame with END_STREAM.
        if endStream { clientEnded = true }
        drainRequests()
        if endStream { receivedClientEnd(force: true) }
    }

    /// Takes every whole message out of the reader and sends it on (or holds it while connecting).
    func drainRequests() {
        while phase == .awaitingFirstMessage || phase == .connecting || phase == .forwarding {
            let message: GRPCMessage
            do {
                guard let next = try requests.next() else { return }
                message = next
            } catch {
                guard case .tooLarge(let size) = error else { return }
                return refuse(.resourceExhausted("request message of \(size) bytes is larger than max_message_bytes (\(state.config.maxMessageBytes)); split the data or raise the limit"), reason: "message_too_large")
            }
            guard !message.compressed else {
                return refuse(SparkgateError(.unimplemented, "compressed request messages are not supported; turn off gRPC compression in the client"), reason: "compressed")
            }
            summary.requestBytes += message.framed.readableBytes
            if let q = team?.quotas, message.payloadLength > q.maxRequestBytes {
                runtime.metrics.quotaRejection(team: state.teamLabel(verified!.identity.team), limit: .requestBytes)
                return refuse(.resourceExhausted("team \(verified!.identity.team) allows request messages of \(q.maxRequestBytes) bytes (max_request_bytes); this one has \(message.payloadLength)"), reason: QuotaLimit.requestBytes.rawValue)
            }
            if phase == .awaitingFirstMessage {
                receivedFirstMessage(message)
            } else {
                receivedLaterMessage(message)
            }
        }
    }

    func receivedClientEnd(force: Bool = false) {
        guard !clientEnded || force else { return }
        clientEnded = true
        guard phase == .forwarding else { return }
        if requests.bufferedBytes > 0 {
            return refuse(.invalidArgument("the request ended in the middle of a message"), reason: "truncated")
        }
        if let backend, let backendStreamID, !sentEndToBackend {
            sentEndToBackend = true
            backend.write(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)), on: backendStreamID, promise: nil)
        }
    }

    private func readEnvelope(_ message: GRPCMessage) -> RequestEnvelope? {
        do {
            return try message.withPayload { try RequestEnvelope.read($0, method: method) }
        } catch {
            refuse(.invalidArgument("the \(method.name) request is not a valid protobuf message (\(error)); is the client speaking Spark Connect?"), reason: "malformed")
            return nil
        }
    }

    private func receivedFirstMessage(_ message: GRPCMessage) {
        guard let envelope = readEnvelope(message), let token = verified, let team else { return }
        let identity = token.identity
        guard let sessionID = envelope.sessionID, !sessionID.isEmpty else {
            return refuse(.invalidArgument("the request has no session_id; Spark Connect clients send one on every call"), reason: "no_session")
        }
        guard UUIDText.isCanonical(sessionID) else {
            return refuse(.invalidArgument("session_id must be a UUID like 00112233-4455-6677-8899-aabbccddeeff"), reason: "bad_session")
        }
        summary.sessionID = sessionID
        summary.clientType = envelope.clientType.map { String($0.prefix(256)) }
        summary.operationID = envelope.operationID
        if method == .executePlan, !frontend.acceptsNewOperations() {
            return refuse(.unavailable("Sparkgate is shutting down and starts no new operations; retry to reach another instance"), reason: "draining")
        }

        if method == .config, let op = envelope.config, op.writes, let denied = state.config.configPolicy.firstDenied(in: op.keys) {
            return refuse(.permissionDenied("config key '\(ClaimsPolicy.clipped(denied))' is denied by this gateway's config_policy; it cannot be set or unset"), reason: "config_denied")
        }

        let namespace = state.namespace
        let backendSessionID = namespace?.backendID(team: identity.team, user: identity.user, clientSessionID: sessionID) ?? sessionID
        summary.backendSessionID = backendSessionID
        var plan = RequestRewrite(userID: identity.user, backendSessionID: namespace == nil ? nil : backendSessionID)
        if method == .executePlan, envelope.operationID == nil {
            plan.insertedOperationID = UUIDText.random()
            summary.operationID = plan.insertedOperationID
        }
        if method == .cloneSession {
            if let newID = envelope.newSessionID {
                guard UUIDText.isCanonical(newID) else {
                    return refuse(.invalidArgument("new_session_id must be a UUID"), reason: "bad_session")
                }
                if let namespace {
                    plan.backendNewSessionID = namespace.backendID(team: identity.team, user: identity.user, clientSessionID: newID)
                    responseRewrite.clientNewSessionID = newID
                }
            } else if let namespace {
                // The backend would pick the clone's id, and the client would then send it back as its own:
                // pick it here so it can be namespaced like every other id.
                let newID = UUIDText.random()
                plan.backendNewSessionID = namespace.backendID(team: identity.team, user: identity.user, clientSessionID: newID)
                responseRewrite.clientNewSessionID = newID
            }
        }
        if namespace != nil { responseRewrite.clientSessionID = sessionID }
        if method == .config, !state.config.configPolicy.denyKeys.isEmpty {
            responseRewrite.configPolicy = state.config.configPolicy
            responseRewrite.dropDeniedPairs = envelope.config?.kind == .getAll
        }

        let caller = UserKey(identity)
        let key = SessionKey(owner: caller, clientSessionID: sessionID)
        if method == .reattachExecute, let op = envelope.operationID,
            let reason = runtime.calls.endedReason(OperationKey(session: key, operationID: op), now: WallClock.now())
        {
            // Sparkgate ended this operation between two of its streams: say why, not Spark's generic error.
            return refuse(reason, reason: "operation_ended")
        }
        var admission = CallAdmission(caller: caller, method: method, clientSessionID: sessionID, backendSessionID: backendSessionID, backend: team.backend)
        let operationID = plan.insertedOperationID ?? envelope.operationID
        admission.operationID = operationID
        admission.reattachable = envelope.reattachable
        admission.tags = envelope.tags
        admission.clientType = summary.clientType
        let rejectForeign = state.config.sessions.rejectForeignSessionIDs
        let now = WallClock.now()
        let decision = runtime.ledger.withLock { ledger -> Result<QuotaRefusal?, QuotaOrPolicyRefusal> in
            switch ledger.admit(admission, quotas: team.quotas, rejectForeignSessions: rejectForeign, now: now) {
            case .failure(let refusal):
                return .failure(refusal)
            case .success:
                if method == .addArtifacts, envelope.artifactBytes > 0 {
                    return .success(ledger.artifactReceived(key, bytes: envelope.artifactBytes, limit: team.quotas.maxArtifactBytesPerSession))
                }
                return .success(nil)
            }
        }
        sessionKey = key
        switch decision {
        case .failure(let refusal):
            if case .quota(let q) = refusal { runtime.metrics.quotaRejection(team: state.teamLabel(identity.team), limit: q.limit) }
            return refuse(refusal.error, reason: refusalReason(refusal))
        case .success(let artifactRefusal):
            admitted = true
            if let artifactRefusal {
                runtime.metrics.quotaRejection(team: state.teamLabel(identity.team), limit: artifactRefusal.limit)
                return refuse(artifactRefusal.error, reason: artifactRefusal.limit.rawValue)
            }
        }
        if let operationID, method == .executePlan || method == .reattachExecute {
            operationKey = OperationKey(session: key, operationID: operationID)
            resultLimitActive = team.quotas.maxResultBytesPerOperation > 0 || runtime.ledger.withLock { $0.operation(operationKey!)?.maxResultBytes ?? 0 } > 0
        }
        if method.isServerStreaming || method.isClientStreaming {
            let loop = eventLoop
            let bound = NIOLoopBound(self, eventLoop: loop)
            registration = runtime.calls.register(
                CallRegistry.Handle(session: key, operation: operationKey) { error in
                    loop.execute {
                        bound.value.refuse(error, reason: "terminated")
                        bound.value.frontend.loop.flushDirty()
                    }
                })
        }
        firstEnvelope = envelope
        rewrite = plan
        pendingToBackend.append(rewritten(message, envelope: envelope, plan: plan))
        openBackend(backendSessionID: backendSessionID)
    }

    private func receivedLaterMessage(_ message: GRPCMessage) {
        guard let envelope = readEnvelope(message), let plan = rewrite, let first = firstEnvelope, let key = sessionKey else { return }
        guard envelope.sessionID == first.sessionID else {
            return refuse(.invalidArgument("every message of a stream must carry the same session_id"), reason: "bad_session")
        }
        if method == .addArtifacts, envelope.artifactBytes > 0, let team {
            if let refusal = runtime.ledger.withLock({ $0.artifactReceived(key, bytes: envelope.artifactBytes, limit: team.quotas.maxArtifactBytesPerSession) }) {
                runtime.metrics.quotaRejection(team: state.teamLabel(key.owner.team), limit: refusal.limit)
                return refuse(refusal.error, reason: refusal.limit.rawValue)
            }
        }
        let framed = rewritten(message, envelope: envelope, plan: plan)
        if phase == .connecting {
            pendingToBackend.append(framed)
        } else {
            writeMessageToBackend(framed)
        }
    }

    /// The message with its identity fields rewritten, as buffers to write in order.
    private func rewritten(_ message: GRPCMessage, envelope: RequestEnvelope, plan: RequestRewrite) -> [ByteBuffer] {
        let edits = message.withPayload { plan.edits(for: envelope, in: $0) }
        return EditedMessage.segments(of: message, applying: edits, allocator: allocator)
    }

    private func refusalReason(_ refusal: QuotaOrPolicyRefusal) -> String {
        switch refusal {
        case .quota(let q): q.limit.rawValue
        case .policy: "foreign_session"
        }
    }

    // MARK: Backend stream

    private func openBackend(backendSessionID: String) {
        guard let backendConfig = state.config.backends[backendName], !backendConfig.endpoints.isEmpty else {
            return refuse(.unavailable("backend '\(backendName)' is not configured"), reason: "no_backend")
        }
        phase = .connecting
        let address = BackendEndpoint.choose(backendConfig.endpoints, for: backendSessionID)
        let endpoint = BackendEndpoint(backend: backendName, address: address, tls: backendConfig.tls)
        let timeout = TimeAmount.nanoseconds(Int64(backendConfig.connectTimeoutSeconds * 1e9))
        // A unary request usually arrives whole with its HEADERS: send it with END_STREAM in one go.
        let endStream = clientEnded && pendingToBackend.isEmpty && requests.bufferedBytes == 0
        runtime.pool.openStream(
            to: endpoint, on: eventLoop, tls: state.backendTLS[backendName], connectTimeout: timeout, owner: self,
            headers: requestHeaders(endpoint: endpoint), endStream: endStream
        ).assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success((let handler, let id)):
                if endStream { sentEndToBackend = true }
                backendConnected(handler, id)
            case .failure(let error):
                runtime.metrics.backendError(endpoint.backend)
                refuse(.unavailable("backend '\(endpoint.backend)' (\(endpoint.address)) is unreachable: \(BackendErrors.describe(error)); retry shortly"), reason: "backend_unreachable")
            }
            frontend.loop.flushDirty()
        }
    }

    private func backendConnected(_ handler: BackendConnectionHandler, _ id: HTTP2StreamID) {
        backend = handler
        backendStreamID = id
        guard phase == .connecting else {
            handler.cancel(id)
            return
        }
        phase = .forwarding
        let pending = pendingToBackend
        pendingToBackend = []
        for (index, message) in pending.enumerated() {
            let last = index == pending.count - 1
            writeMessageToBackend(message, endStream: last && clientEnded && requests.bufferedBytes == 0)
        }
        if pending.isEmpty && clientEnded && !sentEndToBackend {
            sentEndToBackend = true
            handler.write(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)), on: id, promise: nil)
        }
        drainRequests()
        returnRequestCredit(force: true)
    }

    /// The backend's request headers: rebuilt pseudo-headers, the client's metadata through the policy, and
    /// the backend's own token instead of the client's.
    private func requestHeaders(endpoint: BackendEndpoint) -> HPACKHeaders {
        var h = HPACKHeaders()
        h.reserveCapacity(clientHeaders.count + 2)
        h.add(name: ":method", value: "POST")
        h.add(name: ":scheme", value: endpoint.tls ? "https" : "http")
        h.add(name: ":path", value: head.path ?? "")
        h.add(name: ":authority", value: endpoint.authority)
        for (name, value, indexing) in clientHeaders where MetadataPolicy.forwardsRequestHeader(name) {
            h.add(name: name, value: value, indexing: indexing)
        }
        if let token = state.backendTokens[backendName] {
            h.add(name: "authorization", value: "Bearer \(token)", indexing: .neverIndexed)
        }
        return h
    }
}

