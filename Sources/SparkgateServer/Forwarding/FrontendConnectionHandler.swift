import Logging
import NIOCore
import NIOHTTP2
import SparkgateCore

/// One client connection, after TLS and HTTP/2 framing: routes each stream's frames to its `ProxyCall`.
///
/// There is no channel per stream: a call is a plain object keyed by stream id, and flow-control window is
/// returned to the client by the calls themselves, as the backend takes their bytes.
final class FrontendConnectionHandler: HTTP2FrameConnection, ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    let runtime: GatewayRuntime
    let peer: String
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

    init(runtime: GatewayRuntime, peer: String, loop: LoopContext) {
        self.runtime = runtime
        self.peer = peer
        super.init(loop: loop)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let id = frame.streamID
        switch frame.payload {
        case .headers(let headers):
            if let call = calls[id] {
                call.clientHeaders(headers.headers, endStream: headers.endStream)
            } else if id != .rootStream {
                lastStreamID = max(lastStreamID, id)
                let call = ProxyCall(runtime: runtime, frontend: self, streamID: id, peer: peer)
                calls[id] = call
                call.start(headers.headers, endStream: headers.endStream)
            }
        case .data(let data):
            receivedData(data.windowBytes)
            guard case .byteBuffer(let buffer) = data.data else { return }
            calls[id]?.clientData(buffer, endStream: data.endStream, flowControlled: data.windowBytes)
        case .rstStream:
            calls[id]?.clientCancelled()
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        readBurstEnded()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let closed as StreamClosedEvent:
            if let call = calls.removeValue(forKey: closed.streamID) {
                call.clientStreamClosed()
                if let operation = call.operationKey { remember(operation) }
            }
            if draining { closeIfDone(context) }
        case is ChannelShouldQuiesceEvent:
            drain(context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Graceful shutdown. The client is not told yet (a GOAWAY would stop it reattaching to a running
    /// operation, and the listener no longer accepts a new connection): the connection keeps serving the
    /// calls of its running operations, refuses new operations, and sends GOAWAY and closes once no stream
    /// is open and none of its operations is still running. The listener's grace timer ends what outlives it.
    private func drain(_ context: ChannelHandlerContext) {
        guard !draining else { return }
        draining = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        // Operations also end without a stream closing here (abandoned, released from another connection).
        drainCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(200), delay: .milliseconds(200)) { _ in
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
        context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))), promise: nil)
        context.eventLoop.scheduleTask(in: Self.goAwayCloseDelay) { [channel = context.channel] in
            channel.close(promise: nil)
        }
    }

    static let goAwayCloseDelay = TimeAmount.seconds(5)

    private var hasRunningOperation: Bool {
        guard !operations.isEmpty else { return false }
        let ops = operations
        let running = runtime.ledger.withLock { ledger in ops.filter { ledger.operation($0) != nil } }
        operations = running
        return !running.isEmpty
    }

    /// Keeps the set small in steady state: finished operations are dropped whenever it grows.
    private func remember(_ operation: OperationKey) {
        operations.insert(operation)
        if operations.count > 32 { _ = hasRunningOperation }
    }

    /// Whether a new operation may start here: not once the connection is draining.
    func acceptsNewOperations() -> Bool { !draining }
    func channelInactive(context: ChannelHandlerContext) {
        drainCheck?.cancel()
        drainCheck = nil
        let open = calls
        calls.removeAll()
        for call in open.values { call.clientStreamClosed() }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Stream-level protocol errors are answered by NIOHTTP2 with RST_STREAM; the connection carries on.
        runtime.logger.debug("client connection error", metadata: ["peer": "\(peer)", "error": "\(error)"])
        if error is NIOHTTP2Errors.StreamError { return }
        context.fireErrorCaught(error)
    }

    override func streamIsOpen(_ streamID: HTTP2StreamID) -> Bool {
        calls[streamID] != nil
    }

    /// Streams still open (for drain).
    var openCalls: Int { calls.count }
}
