import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import SparkgateCore
import SparkgateObservability

/// One HTTP/2 connection to a backend: opens streams for their owners and routes the backend's frames to
/// them. Lives on one event loop with the client connections it serves.
///
/// Its connection-level window goes back as bytes arrive: each stream's own window bounds what it can make
/// the gateway hold, and one tenant's slow reader must not stall the other tenants' streams on a shared
/// backend connection.
package final class BackendConnectionHandler: ChannelInboundHandler, RemovableChannelHandler, HTTP2FrameReceiver {
    package typealias InboundIn = HTTP2Frame
    package typealias OutboundOut = HTTP2Frame

    /// Streams per connection before a fresh connection takes over (stream ids are 31-bit and never reused).
    package static let streamLimit: UInt32 = 1 << 30

    package let endpoint: BackendEndpoint
    package let writer: FrameWriter
    private var owners: [HTTP2StreamID: any BackendStreamOwner] = [:]
    private var nextStreamID: UInt32 = 1
    private(set) var draining = false
    /// The last stream a GOAWAY from the backend promised to serve; later ones were never processed.
    private var goAwayLastStreamID: HTTP2StreamID?
    private let onClose: () -> Void
    private let limits: ConnectionLimits
    private let metrics: GatewayMetrics
    /// Keepalive: a backend that goes silent (a host that vanished without closing) is found and closed, so its
    /// calls end with UNAVAILABLE instead of waiting for TCP to notice.
    private var lifecycle: ConnectionLifecycleDriver?

    package init(
        loop: LoopContext, endpoint: BackendEndpoint, limits: ConnectionLimits, metrics: GatewayMetrics,
        onClose: @escaping () -> Void
    ) {
        self.endpoint = endpoint
        self.onClose = onClose
        self.limits = limits.backendConnection
        self.metrics = metrics
        self.writer = FrameWriter(loop: loop, credit: ConnectionCredit(target: HTTP2Tuning.connectionWindow))
    }

    /// Whether new streams may be opened here.
    package var isUsable: Bool { !draining && writer.isActive && nextStreamID < Self.streamLimit }

    package func handlerAdded(context: ChannelHandlerContext) {
        writer.attach(context, receiver: self)
        let lifecycle = ConnectionLifecycleDriver(
            channel: context.channel, limits: limits, metrics: metrics, keepaliveEvent: .backendKeepaliveTimeout)
        lifecycle.owner = self
        self.lifecycle = lifecycle
        lifecycle.handle(.accepted(tls: false))
        // Raise the connection window from the protocol's 65,535 bytes at once; stream windows come from SETTINGS.
        if context.channel.isActive { writer.giveBackWindow(force: true) }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        lifecycle?.stop()
        writer.detach()
    }

    package func channelActive(context: ChannelHandlerContext) {
        writer.giveBackWindow(force: true)
        context.fireChannelActive()
    }

    /// Opens a stream for `owner` by sending its HEADERS; nil when the connection cannot take new streams.
    package func openStream(for owner: any BackendStreamOwner, headers: HPACKHeaders) -> HTTP2StreamID? {
        guard isUsable else { return nil }
        let id = HTTP2StreamID(Int(nextStreamID))
        nextStreamID += 2
        owners[id] = owner
        writer.write(.headers(.init(headers: headers)), on: id, promise: nil)
        return id
    }

    /// Resets a stream Sparkgate no longer wants (the client went away, or Sparkgate ended the call).
    package func cancel(_ id: HTTP2StreamID) {
        guard owners.removeValue(forKey: id) != nil else { return }
        writer.write(.rstStream(.cancel), on: id, promise: nil)
    }

    package func returnStreamCredit(_ bytes: Int, on id: HTTP2StreamID) {
        guard owners[id] != nil else { return }
        writer.write(.windowUpdate(windowSizeIncrement: bytes), on: id, promise: nil)
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received(unwrapInboundIn(data))
    }

    package func received(_ frame: HTTP2Frame) {
        writer.loop.tick()
        let id = frame.streamID
        switch frame.payload {
        case .headers(let headers):
            owners[id]?.backendHeaders(headers.headers, endStream: headers.endStream)
        case .data(let data):
            guard case .byteBuffer(let buffer) = data.data else { return }
            owners[id]?.backendData(buffer, endStream: data.endStream, windowBytes: data.windowBytes)
        case .rstStream(let code):
            owners.removeValue(forKey: id)?.backendStreamClosed(reset: code)
        case .ping(_, ack: true):
            lifecycle?.handle(.pingAcknowledged)
        case .goAway(let lastStreamID, _, _):
            // No new streams here; streams the backend already took finish normally, and the ones it never
            // processed are refused, so their calls can safely be retried.
            draining = true
            goAwayLastStreamID = min(goAwayLastStreamID ?? lastStreamID, lastStreamID)
            for (stream, owner) in owners where stream > lastStreamID {
                owners.removeValue(forKey: stream)
                owner.backendStreamClosed(reset: .refusedStream)
            }
        default:
            break
        }
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        lifecycle?.handle(.frameReceived)
        writer.readBurstEnded()
        context.fireChannelReadComplete()
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let closed as StreamClosedEvent:
            streamClosed(closed)
        case let window as NIOHTTP2WindowUpdatedEvent where window.streamID == .rootStream:
            if let inbound = window.inboundWindowSize { connectionWindowReported(inbound) }
        default:
            break
        }
        context.fireUserInboundEventTriggered(event)
    }

    package func streamClosed(_ closed: StreamClosedEvent) {
        writer.loop.tick()
        let unprocessed = goAwayLastStreamID.map { closed.streamID > $0 } ?? false
        owners.removeValue(forKey: closed.streamID)?.backendStreamClosed(
            reset: unprocessed ? .refusedStream : closed.reason)
    }

    package func connectionWindowReported(_ inbound: Int) {
        writer.windowReported(inbound)
    }

    package func channelInactive(context: ChannelHandlerContext) {
        writer.loop.tick()
        lifecycle?.stop()
        draining = true
        let open = owners
        owners.removeAll()
        onClose()
        for owner in open.values { owner.backendStreamClosed(reset: nil) }
        // Not in a read burst: what the owners wrote to their clients goes out now.
        writer.loop.flushDirty()
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOHTTP2Errors.StreamError { return }
        context.close(promise: nil)
    }

    package func close() {
        draining = true
        writer.context?.close(promise: nil)
    }
}

extension BackendConnectionHandler: LifecycleOwner {
    package func sendPing() {
        writer.write(
            .ping(HTTP2PingData(withInteger: .random(in: .min ... .max)), ack: false), on: .rootStream, promise: nil)
        writer.flushNow()
    }

    package func sendGoAway(_ reason: LimitEvent, calm: Bool) {
        close()
    }
}
