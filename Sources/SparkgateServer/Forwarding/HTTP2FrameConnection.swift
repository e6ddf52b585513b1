import NIOCore
import NIOHTTP2

/// What both ends of the gateway share for one HTTP/2 connection without a multiplexer: raising the
/// connection window at start, returning connection-level window in batches, and writes coalesced into one
/// flush per read burst.
class HTTP2FrameConnection: FrameSink {
    let loop: LoopContext
    private(set) var context: ChannelHandlerContext?
    private var started = false
    private var connectionCredit = 0

    init(loop: LoopContext) {
        self.loop = loop
    }

    var eventLoop: any EventLoop { loop.eventLoop }
    var isActive: Bool { context?.channel.isActive ?? false }

    func attach(_ context: ChannelHandlerContext) {
        self.context = context
        // A handler added once the connection is up never sees channelActive: start here too.
        if context.channel.isActive { start() }
    }

    func detach() {
        context = nil
    }

    // The channel-handler lifecycle both subclasses share; they conform to ChannelInboundHandler and these
    // inherited methods are their witnesses.
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

    /// Raises the connection window from the protocol's 65,535 bytes to ours; stream windows come from SETTINGS.
    func start() {
        guard !started, let context else { return }
        started = true
        let increment = HTTP2Tuning.connectionWindow - 65_535
        context.writeAndFlush(NIOAny(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: increment))), promise: nil)
    }

    /// Counts DATA against the connection window. It comes back as soon as bytes arrive: each stream's own
    /// window bounds what it can hold, so one slow stream never starves the others.
    func receivedData(_ bytes: Int) {
        connectionCredit += bytes
    }

    /// End of a read burst: return connection window, then flush every connection written to.
    func readBurstEnded() {
        if connectionCredit >= HTTP2Tuning.connectionCreditBatch, let context {
            context.write(NIOAny(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: connectionCredit))), promise: nil)
            connectionCredit = 0
            loop.markDirty(self)
        }
        loop.flushDirty()
    }

    /// Whether `streamID` may still get window back (its owner is alive).
    func streamIsOpen(_ streamID: HTTP2StreamID) -> Bool { true }

    // MARK: FrameSink

    func write(_ payload: HTTP2Frame.FramePayload, on streamID: HTTP2StreamID, promise: EventLoopPromise<Void>?) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(NIOAny(HTTP2Frame(streamID: streamID, payload: payload)), promise: promise)
        loop.markDirty(self)
    }

    func returnCredit(_ bytes: Int, on streamID: HTTP2StreamID) {
        guard bytes > 0, streamIsOpen(streamID) else { return }
        write(.windowUpdate(windowSizeIncrement: bytes), on: streamID, promise: nil)
    }

    func flushNow() {
        context?.flush()
    }
}
