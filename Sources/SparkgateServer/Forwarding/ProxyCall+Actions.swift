import NIOCore
import NIOHPACK
import NIOHTTP2
import SparkgateAuth
import SparkgateCore
import SparkgateEngines
import SparkgateFraming
import SparkgateSharedState
import SparkgateTransport

extension ProxyCall {
    func execute(_ action: Machine.Action) {
        trace?.observe(action)
        switch action {
        case .authenticate(let token):
            authenticate(token)
        case .refreshKeys:
            let refresher = context.keyRefresher
            let done = eventLoop.makePromise(of: Void.self)
            done.completeWithTask { await refresher.refreshNow() }
            done.futureResult.assumeIsolated().whenComplete { [self] _ in handleFromOutside(.keysRefreshed) }
        case .startDeadline(let duration):
            let (seconds, attoseconds) = duration.components
            let nanos = max(0, min(seconds, 10 * 86_400)) * 1_000_000_000 + attoseconds / 1_000_000_000
            let loop = frontend.writer.loop
            loop.deadlines.add(self, at: loop.eventLoop.now + .nanoseconds(nanos))
        case .readRequests:
            readRequests()
        case .readResponses(let envelopes):
            readResponses(envelopes: envelopes)
        case .returnRequestCredit(let bytes, let stream):
            frontend.release(bytes, stream: stream ? streamID : nil)
        case .returnResponseCredit(let bytes):
            if let backend, let backendStreamID { backend.returnStreamCredit(bytes, on: backendStreamID) }
        case .admit(let plan):
            // The local ledger answers at once; a shared one once Redis did, the machine holding the call in
            // `admitting` meanwhile (and taking the answer even if the call ended, so the ledger hears how).
            switch context.admissions.admit(
                plan.admission, quotas: plan.quotas, rejectForeignSessions: plan.rejectForeignSessions,
                now: frontend.writer.loop.now, on: eventLoop)
            {
            case .now(let result):
                handle(.admissionDecided(result))
            case .later(let answer):
                answer.assumeIsolated().whenSuccess { [self] result in handleFromOutside(.admissionDecided(result)) }
            }
        case .chargeArtifacts(let session, let bytes, let limit):
            handle(
                .artifactsCharged(context.ledger.artifactReceived(session, bytes: bytes, limit: limit)))
        case .chargeResults(let operation, let bytes, let rows):
            handle(.resultsCharged(context.ledger.resultReceived(operation, bytes: bytes, rows: rows)))
        case .register(let session, let operation):
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            let loop = eventLoop
            registration = context.calls.register(
                CallRegistry.Handle(session: session, operation: operation) { error in
                    loop.execute { bound.value.handleFromOutside(.terminated(error, reason: "terminated")) }
                })
        case .recallOperationEnd(let operation):
            handle(.operationEndRecalled(context.calls.endedReason(operation, now: WallClock.now())))
        case .readBackendHealth(let backend, let endpoints):
            let health = context.health
            handle(.backendHealthRead(unhealthy: endpoints.filter { !health.isHealthy(backend, $0) }))
        case .findEngine(let request):
            findEngine(request)
        case .recordPlacement(let record):
            context.placements.record(
                record.session, record.change, sessionIdleSeconds: record.sessionIdleSeconds, on: eventLoop
            ).assumeIsolated().whenSuccess { [self] placed in handleFromOutside(.placementRecorded(placed)) }
        case .claimPlacement(let record):
            context.placements.record(
                record.session, record.change, sessionIdleSeconds: record.sessionIdleSeconds, on: eventLoop
            ).whenComplete { _ in }
        case .openStream(let request):
            openStream(request)
        case .sendRequest(let message, let envelope, let rewrite, let endStream):
            sendRequest(message, envelope, rewrite, endStream: endStream)
        case .endRequest:
            if let backend, let backendStreamID {
                backend.writer.write(
                    .data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)), on: backendStreamID, promise: nil)
                backend.writer.flushNow()
            }
        case .sendResponseHead(let headers):
            frontend.writer.write(
                .headers(.init(headers: ResponseHeaders.forwarded(headers, withStatus: true))), on: streamID,
                promise: nil)
        case .sendResponse(let message, let edits):
            sendResponse(message, edits: edits)
        case .forwardTrailers(let headers, let trailersOnly):
            frontend.writer.write(
                .headers(.init(headers: ResponseHeaders.forwarded(headers, withStatus: trailersOnly), endStream: true)),
                on: streamID, promise: nil)
        case .sendStatus(let error, let trailersOnly):
            frontend.writer.write(
                .headers(.init(headers: ResponseHeaders.status(error, trailersOnly: trailersOnly), endStream: true)),
                on: streamID, promise: nil)
        case .answerLocally(let message, let withHead):
            var framed = frontend.allocator.buffer(capacity: message.count + 5)
            framed.writeInteger(UInt8(0))
            framed.writeInteger(UInt32(message.count))
            framed.writeBytes(message)
            if withHead {
                frontend.writer.write(.headers(.init(headers: ResponseHeaders.localHead())), on: streamID, promise: nil)
            }
            frontend.writer.write(.data(.init(data: .byteBuffer(framed))), on: streamID, promise: nil)
            frontend.writer.write(
                .headers(.init(headers: ResponseHeaders.okTrailers(), endStream: true)), on: streamID, promise: nil)
        case .resetBackend:
            if let backend, let backendStreamID { backend.cancel(backendStreamID) }
            backend = nil
            backendStreamID = nil
        case .stopClient:
            frontend.stopStream(streamID)
        case .recordEndpointFailure(let failure):
            context.health.record(
                failure.backend, failure.endpoint, ok: false, settings: failure.settings, reason: failure.reason)
        case .interruptOperation(let operation, let backendSessionID, let backendName, let placement):
            context.backendCalls.interrupt(
                operation, backendSessionID: backendSessionID, backend: backendName, placement: placement,
                access: state.backendAccess, on: eventLoop)
        case .endOperation(let operation, let error):
            context.calls.terminate(operation: operation, with: error, now: WallClock.now())
        case .operationCompleted(let operation):
            context.ledger.operationEnded(operation)
        case .finish(let outcome):
            finish(outcome)
        }
    }

    // MARK: Authentication

    private func authenticate(_ token: Substring) {
        // The connection's memo of its last token, valid for the configuration (and authenticator) it came from.
        let known = frontend.authMemo.flatMap { $0.state === state ? $0 : nil }
        var memo = known?.token
        let (outcome, recalled) = state.authenticator.authenticate(token, now: frontend.writer.loop.now, memo: &memo)
        switch outcome {
        case .verified(let verified):
            frontend.callAuthenticated()
            let team = recalled ? known?.team : state.config.team(verified.identity.team)
            frontend.authMemo = memo.map { FrontendConnectionHandler.AuthMemo(state: state, token: $0, team: team) }
            handle(.authenticated(verified, team: team))
        case .failed(let failure):
            frontend.authMemo = nil
            handle(.authenticationFailed(failure))
        case .unknownKey(let kid):
            frontend.authMemo = nil
            handle(
                .unknownKey(
                    Authenticator.unknownKeyFailure(kid),
                    mayRefresh: context.keyRefresher.mayRefresh(now: WallClock.now())))
        }
    }

    // MARK: Backend stream

    /// A launch pool's engine for the call's share key, launched if needed (the call waits in `connecting`
    /// meanwhile, bounded by its deadline and the launch's startup timeout).
    private func findEngine(_ request: EngineRequest) {
        context.engines.target(for: request.key, settings: request.settings, bound: request.bound, on: eventLoop)
            .assumeIsolated().whenComplete { [self] result in
                switch result {
                case .success(.ready(let engine)):
                    handleFromOutside(
                        .engineReady(ReadyEngine(id: engine.id, address: engine.address, token: engine.token)))
                case .success(.lost(let error)):
                    handleFromOutside(.backendSessionLost(error))
                case .failure(let error):
                    handleFromOutside(
                        .backendOpenFailed(
                            error as? SparkgateError ?? .unavailable("backend '\(request.key.backend)': \(error)")))
                }
            }
    }

    private func openStream(_ request: BackendStreamRequest) {
        let endpoint = BackendEndpoint(backend: request.backend, address: request.address, tls: request.tls)
        var headers = BackendRequestHeaders.make(
            path: head.path ?? "", endpoint: endpoint, token: request.token, forwarding: clientHeaders)
        trace?.inject(into: &headers)
        if let opened = context.pool.openStreamIfConnected(to: endpoint, on: eventLoop, owner: self, headers: headers) {
            return streamOpened(opened)
        }
        context.pool.openStream(
            to: endpoint, on: eventLoop, tls: request.tls ? state.backendAccess.tls[request.backend] : nil,
            connectTimeout: .nanoseconds(Int64(request.connectTimeoutSeconds * 1e9)), limits: state.config.limits,
            owner: self, headers: headers
        ).assumeIsolated().whenComplete { [self] result in streamOpened(result) }
    }

    private func streamOpened(_ result: Result<(BackendConnectionHandler, HTTP2StreamID), any Error>) {
        switch result {
        case .success((let handler, let id)):
            backend = handler
            backendStreamID = id
            handleFromOutside(.backendOpened)
        case .failure(let error):
            handleFromOutside(.backendStreamFailed(reason: BackendErrors.describe(error)))
        }
    }

    private func sendRequest(
        _ message: GRPCMessage, _ envelope: RequestEnvelope, _ rewrite: RequestRewrite, endStream: Bool
    ) {
        guard let backend, let backendStreamID else { return }
        let edits = message.withPayload { rewrite.edits(for: envelope, in: $0) }
        let segments =
            edits.isEmpty
            ? [message.framed] : EditedMessage.segments(of: message, applying: edits, allocator: frontend.allocator)
        write(
            segments, to: backend.writer, on: backendStreamID, endStream: endStream, token: message.framed.readableBytes
        )
        // A complete request goes out at once rather than at the end of the read burst, so the backend works on
        // it while the gateway reads the next one (a pipelining client sends many per burst).
        if endStream { backend.writer.requestWritten() }
    }

    private func sendResponse(_ message: GRPCMessage, edits: [ByteEdit]) {
        let segments =
            edits.isEmpty
            ? [message.framed] : EditedMessage.segments(of: message, applying: edits, allocator: frontend.allocator)
        write(segments, to: frontend.writer, on: streamID, endStream: false, token: -message.framed.readableBytes)
    }

    /// Writes a message's segments; `written(token)` is told once the last one has left the gateway, so flow
    /// control counts every message until the receiving side takes it, whatever its size. The token is the
    /// message's size, negative for a response.
    private func write(
        _ segments: [ByteBuffer], to writer: FrameWriter, on id: HTTP2StreamID, endStream: Bool, token: Int
    ) {
        for (index, segment) in segments.enumerated() {
            let payload = HTTP2Frame.FramePayload.data(
                .init(data: .byteBuffer(segment), endStream: index == segments.count - 1 && endStream))
            if index == segments.count - 1 {
                writer.write(payload, on: id, listener: self, token: token)
            } else {
                writer.write(payload, on: id, promise: nil)
            }
        }
    }
}

extension ProxyCall: WriteListener {
    /// A message written by `write(_:to:on:endStream:token:)` has left the gateway.
    func written(_ token: Int) {
        hold(-abs(token))
        handleFromOutside(token > 0 ? .requestFlushed(bytes: token) : .responseFlushed(bytes: -token))
    }
}

extension ProxyCall: DeadlineOwner {
    /// The client's `grpc-timeout` passed.
    func deadlinePassed() {
        handleFromOutside(.deadlineExpired)
    }
}
