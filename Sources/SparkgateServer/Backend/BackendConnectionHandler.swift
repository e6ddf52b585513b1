import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2

/// One HTTP/2 connection to a backend: opens streams for their owners and routes the backend's frames to
/// them. Lives on one event loop with the client connections it serves.
final class BackendConnectionHandler: HTTP2FrameConnection, ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// Streams per connection before a fresh connection takes over (stream ids are 31-bit and never reused).
    static let streamLimit: UInt32 = 1 << 30

    let endpoint: BackendEndpoint
    private var owners: [HTTP2StreamID: any BackendStreamOwner] = [:]
    private var nextStreamID: UInt32 = 1
    private(set) var draining = false
    private let onClose: () -> Void

    init(loop: LoopContext, endpoint: BackendEndpoint, onClose: @escaping () -> Void) {
        self.endpoint = endpoint
        self.onClose = onClose
        super.init(loop: loop)
    }

    /// Whether new streams may be opened here.
    var isUsable: Bool { !draining && (context?.channel.isActive ?? false) && nextStreamID < Self.streamLimit }

    /// Opens a stream for `owner` by sending its HEADERS; nil when the connection cannot take new streams.
    func openStream(for owner: any BackendStreamOwner, headers: HPACKHeaders, endStream: Bool = false) -> HTTP2StreamID? {
        guard isUsable else { return nil }
        let id = HTTP2StreamID(Int(nextStreamID))
        nextStreamID += 2
        owners[id] = owner
        write(.headers(.init(headers: headers, endStream: endStream)), on: id, promise: nil)
        return id
    }

    /// Resets a stream Sparkgate no longer wants (the client went away, or Sparkgate ended the call).
    func cancel(_ id: HTTP2StreamID) {
        guard owners.removeValue(forKey: id) != nil else { return }
        write(.rstStream(.cancel), on: id, promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let id = frame.streamID
        switch frame.payload {
        case .headers(let headers):
            owners[id]?.backendHeaders(headers.headers, endStream: headers.endStream)
        case .data(let data):
            receivedData(data.windowBytes)
            guard case .byteBuffer(let buffer) = data.data else { return }
            owners[id]?.backendData(buffer, endStream: data.endStream, flowControlled: data.windowBytes)
        case .rstStream(let code):
            owners.removeValue(forKey: id)?.backendStreamClosed(reset: code)
        case .goAway:
            // No new streams here; streams the backend already took finish normally.
            draining = true
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        readBurstEnded()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let closed = event as? StreamClosedEvent, let owner = owners.removeValue(forKey: closed.streamID) {
            owner.backendStreamClosed(reset: closed.reason)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        draining = true
        let open = owners
        owners.removeAll()
        onClose()
        for owner in open.values { owner.backendStreamClosed(reset: nil) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOHTTP2Errors.StreamError { return }
        context.close(promise: nil)
    }

    override func streamIsOpen(_ streamID: HTTP2StreamID) -> Bool {
        owners[streamID] != nil
    }

    func close() {
        draining = true
        context?.close(promise: nil)
    }
}
