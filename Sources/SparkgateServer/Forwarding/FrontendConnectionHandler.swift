import Logging
import NIOCore
import NIOHTTP2
import SparkgateAuth
import SparkgateCore
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport

/// One client connection, after TLS and HTTP/2 framing: routes each stream's frames to its `ProxyCall`,
/// and reports the connection's life (streams, pings, refusals) to its `ConnectionLifecycle`.
///
/// There is no channel per stream: a call is a plain object keyed by stream id. Connection-level window
/// starts at the protocol's 65,535 bytes and grows to the gateway's once a call on the connection
/// authenticates, so an unauthenticated peer can make the gateway hold no more than that.
final class FrontendConnectionHandler: ChannelInboundHandler, RemovableChannelHandler, HTTP2FrameReceiver {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    let parts: ConnectionParts
    let peer: String
    let writer: FrameWriter
    let lifecycle: ConnectionLifecycleDriver
    let allocator = ByteBufferAllocator()
    private var calls: [HTTP2StreamID: ProxyCall] = [:]
    /// The highest stream the client opened: what a GOAWAY promises to finish.
    private var lastStreamID = HTTP2StreamID(0)
    /// Set once a shutdown asked this connection to drain.
    private(set) var draining = false
    /// Operations this connection carried that may still be running. A Spark result spans several streams
    /// (ExecutePlan, then ReattachExecute after each `senderMaxStreamDuration`), so "in flight" during a
    /// drain means these, not just the open streams.
    private var operations: Set<OperationKey> = []
    private var drainCheck: RepeatedTask?
    private var sentGoAway = false
    /// Its place in the pipeline, while it has one (stream closures arrive without it, from the HTTP/2 handler).
    private var context: ChannelHandlerContext?
    /// The last token a call on this connection verified, with the configuration it was checked against.
    var authMemo: AuthMemo?
    /// The last backend session id a call on this connection derived.
    let backendIDs = SessionNamespace.Memo()

    struct AuthMemo {
        let state: GatewayGeneration
        let token: TokenMemo
        let team: SparkgateConfig.Team?
    }

    init(parts: ConnectionParts, peer: String, loop: LoopContext, lifecycle: ConnectionLifecycleDriver) {
        self.parts = parts
        self.peer = peer
        self.lifecycle = lifecycle
        self.writer = FrameWriter(loop: loop, credit: ConnectionCredit(target: 65_535))
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        writer.attach(context, receiver: self)
        lifecycle.owner = self
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        writer.detach()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received(unwrapInboundIn(data))
    }

    func received(_ frame: HTTP2Frame) {
        writer.loop.tick()
        let id = frame.streamID
        switch frame.payload {
        case .headers(let headers):
            if let call = calls[id] {
                call.clientHeaders(endStream: headers.endStream)
            } else if id != .rootStream {
                lastStreamID = max(lastStreamID, id)
                let call = ProxyCall(
                    context: parts.callContext, state: parts.generation(), frontend: self, streamID: id, peer: peer,
                    draining: draining)
                calls[id] = call
                lifecycle.handle(.requestStarted)
                call.start(headers.headers, endStream: headers.endStream)
            }
        case .data(let data):
            // DATA for a stream with no call (finished) is not delivered: its window comes back on its own.
            guard let call = calls[id] else { return }
            let bytes = data.windowBytes
            writer.delivered(bytes)
            guard case .byteBuffer(let buffer) = data.data else {
                return call.clientData(ByteBuffer(), endStream: data.endStream, windowBytes: bytes)
            }
            call.clientData(buffer, endStream: data.endStream, windowBytes: bytes)
        case .rstStream:
            calls[id]?.clientGone()
        case .ping(_, ack: true):
            lifecycle.handle(.pingAcknowledged)
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        lifecycle.handle(.frameReceived)
        writer.readBurstEnded()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let closed as StreamClosedEvent:
            streamClosed(closed)
        case let window as NIOHTTP2WindowUpdatedEvent where window.streamID == .rootStream:
            if let inbound = window.inboundWindowSize { connectionWindowReported(inbound) }
        case is ChannelShouldQuiesceEvent:
            drain(context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func streamClosed(_ closed: StreamClosedEvent) {
        writer.loop.tick()
        if let call = calls.removeValue(forKey: closed.streamID) {
            call.clientGone()
            if let operation = call.operation { remember(operation) }
            lifecycle.handle(.streamClosed(openStreams: calls.count))
        }
        if draining, let context { closeIfDone(context) }
    }

    func connectionWindowReported(_ inbound: Int) {
        writer.windowReported(inbound)
    }

    // MARK: For calls

    /// A call on this connection authenticated: the peer is now trusted with the gateway's full window.
    func callAuthenticated() {
        writer.raiseWindow(to: HTTP2Tuning.connectionWindow)
    }

    /// A call gives back window: always on the connection, on its stream while the client may still send.
    func release(_ bytes: Int, stream: HTTP2StreamID?) {
        if let stream, calls[stream] != nil {
            writer.write(.windowUpdate(windowSizeIncrement: bytes), on: stream, promise: nil)
        }
        writer.released(bytes)
    }

    /// After its trailers, a client still sending is told to stop with RST_STREAM(NO_ERROR), which says the
    /// response is complete (RFC 9113 §8.1); CANCEL would make the client report CANCELLED instead.
    func stopStream(_ id: HTTP2StreamID) {
        guard writer.isActive, calls[id] != nil else { return }
        writer.write(.rstStream(.noError), on: id, promise: nil)
    }

    func callFinished(_ call: ProxyCall, outcome: CallOutcome) {
        if let operation = call.operation { remember(operation) }
        guard let refusal = outcome.refusal, refusal.isClientFault else { return }
        if case .authFailure? = refusal.metric { lifecycle.handle(.authenticationFailed) }
        lifecycle.handle(.refused)
    }

    // MARK: Drain

    /// Graceful shutdown. The client is not told yet (a GOAWAY would stop it reattaching to a running
    /// operation, and the listener no longer accepts a new connection): the connection keeps serving the
    /// calls of its running operations, refuses new operations, and sends GOAWAY and closes once no stream
    /// is open and none of its operations is still running. The listener's grace timer ends what outlives it.
    private func drain(_ context: ChannelHandlerContext) {
        guard !draining else { return }
        draining = true
        for call in calls.values { call.drain() }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        // Operations also end without a stream closing here (abandoned, released from another connection).
        drainCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(200), delay: .milliseconds(200))
        { _ in
            bound.value.0.closeIfDone(bound.value.1)
        }
        closeIfDone(context)
    }

    /// Sends GOAWAY once nothing is left to finish. The client closes the connection when it has read
    /// everything (the last frames may still wait for its flow-control window); closing it here instead could
    /// cut a result's tail, so Sparkgate only closes after `goAwayCloseDelay` as a backstop.
    private func closeIfDone(_ context: ChannelHandlerContext) {
        guard !sentGoAway, calls.isEmpty, !hasRunningOperation else { return }
        sentGoAway = true
        drainCheck?.cancel()
        drainCheck = nil
        context.writeAndFlush(
            wrapOutboundOut(
                HTTP2Frame(
                    streamID: .rootStream,
                    payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))), promise: nil)
        context.eventLoop.scheduleTask(in: Self.goAwayCloseDelay) { [channel = context.channel] in
            channel.close(promise: nil)
        }
    }

    static let goAwayCloseDelay = TimeAmount.seconds(5)

    private var hasRunningOperation: Bool {
        guard !operations.isEmpty else { return false }
        let running = parts.ledger.running(operations)
        operations = running
        return !running.isEmpty
    }

    /// Keeps the set small in steady state: finished operations are dropped whenever it grows.
    private func remember(_ operation: OperationKey) {
        operations.insert(operation)
        if operations.count > 32 { _ = hasRunningOperation }
    }

    func channelInactive(context: ChannelHandlerContext) {
        lifecycle.stop()
        drainCheck?.cancel()
        drainCheck = nil
        let open = calls
        calls.removeAll()
        for call in open.values { call.clientGone() }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Stream-level protocol errors are answered by NIOHTTP2 with RST_STREAM; the connection carries on.
        parts.logger.debug("client connection error", metadata: ["peer": "\(peer)", "error": "\(error)"])
        if error is NIOHTTP2Errors.StreamError { return }
        context.fireErrorCaught(error)
    }

}

extension FrontendConnectionHandler: LifecycleOwner {
    func sendPing() {
        writer.write(
            .ping(HTTP2PingData(withInteger: .random(in: .min ... .max)), ack: false), on: .rootStream, promise: nil)
        writer.flushNow()
    }

    func sendGoAway(_ reason: LimitEvent, calm: Bool) {
        let debug = ByteBuffer(string: reason.rawValue)
        writer.write(
            .goAway(lastStreamID: lastStreamID, errorCode: calm ? .enhanceYourCalm : .noError, opaqueData: debug),
            on: .rootStream, promise: nil)
        writer.flushNow()
    }
}
