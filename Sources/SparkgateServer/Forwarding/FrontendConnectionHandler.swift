import Logging
import NIOCore
import NIOHTTP2

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

    init(runtime: GatewayRuntime, peer: String, loop: LoopContext) {
        self.runtime = runtime
        self.peer = peer
        super.init(loop: loop)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        attach(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        detach()
    }

    func channelActive(context: ChannelHandlerContext) {
        start()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let id = frame.streamID
        switch frame.payload {
        case .headers(let headers):
            if let call = calls[id] {
                call.clientHeaders(headers.headers, endStream: headers.endStream)
            } else if id != .rootStream {
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
        if let closed = event as? StreamClosedEvent, let call = calls.removeValue(forKey: closed.streamID) {
            call.clientStreamClosed()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
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
