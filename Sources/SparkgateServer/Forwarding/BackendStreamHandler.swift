import NIOCore
import NIOHPACK
import NIOHTTP2

/// The backend half of a proxied call: passes the backend's frames to the frontend handler and writes the
/// frontend's onto the backend stream. Both live on one event loop, so calls between them are direct.
final class BackendStreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    weak var frontend: FrontendStreamHandler?
    private var context: ChannelHandlerContext?
    private var cancelled = false
    private var sawTrailers = false
    private var resetCode: HTTP2ErrorCode?

    init(frontend: FrontendStreamHandler) {
        self.frontend = frontend
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if cancelled { context.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        readIfWanted()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers):
            if headers.endStream { sawTrailers = true }
            frontend?.backendHeaders(headers.headers, endStream: headers.endStream)
        case .data(let data):
            guard case .byteBuffer(let buffer) = data.data else { return }
            frontend?.backendData(buffer, endStream: data.endStream)
        case .rstStream(let code):
            resetCode = code
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        frontend?.flushClient()
        readIfWanted()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !cancelled && !sawTrailers { frontend?.backendClosed(resetCode: resetCode) }
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { frontend?.backendBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case let reset as NIOHTTP2Errors.StreamClosed = error { resetCode = reset.errorCode }
        context.close(promise: nil)
    }

    // MARK: Driven by the frontend

    var isWritable: Bool { context?.channel.isWritable ?? false }

    /// Reads more of the response while the client can take it.
    func readIfWanted() {
        guard !cancelled, let context, frontend?.isWritable == true else { return }
        context.read()
    }

    func sendHead(_ headers: HPACKHeaders) {
        context?.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
    }

    func sendMessage(_ framed: ByteBuffer, endStream: Bool = false) {
        context?.write(wrapOutboundOut(.data(.init(data: .byteBuffer(framed), endStream: endStream))), promise: nil)
    }

    func sendEnd() {
        guard let context else { return }
        context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(context.channel.allocator.buffer(capacity: 0)), endStream: true))), promise: nil)
    }

    func flush() {
        context?.flush()
    }

    /// Resets the backend stream (RST_STREAM CANCEL): the client is gone or Sparkgate ended the call.
    func cancel() {
        guard !cancelled else { return }
        cancelled = true
        context?.close(promise: nil)
    }
}
