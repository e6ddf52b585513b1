import NIOHTTP2

/// The handler right above `NGHTTP2ChannelHandler`, told what the session parsed by a direct call rather than
/// through the pipeline: a frame sent up the pipeline is wrapped in `NIOAny` and cast back (a dynamic cast) by
/// the handler that reads it, and every user event is a dynamic cast per handler. The two handlers are
/// adjacent in every pipeline Sparkgate builds, so nothing in between is skipped.
package protocol HTTP2FrameReceiver: AnyObject {
    func received(_ frame: HTTP2Frame)
    func streamClosed(_ event: StreamClosedEvent)
    /// The connection's inbound window as the session holds it after a read.
    func connectionWindowReported(_ inbound: Int)
}
