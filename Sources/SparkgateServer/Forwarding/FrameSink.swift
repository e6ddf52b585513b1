import NIOCore
import NIOHPACK
import NIOHTTP2

/// A connection ProxyCalls write HTTP/2 frames to: the client's, or a backend's.
protocol FrameSink: AnyObject {
    /// Writes a frame on `streamID`; the flush happens once, at the end of the current read burst.
    func write(_ payload: HTTP2Frame.FramePayload, on streamID: HTTP2StreamID, promise: EventLoopPromise<Void>?)
    /// Returns flow-control window to the peer for `streamID` (and the connection).
    func returnCredit(_ bytes: Int, on streamID: HTTP2StreamID)
    func flushNow()
    var eventLoop: any EventLoop { get }
}

/// The owner of one backend stream: a proxied call, or one of Sparkgate's own calls.
protocol BackendStreamOwner: AnyObject {
    func backendHeaders(_ headers: HPACKHeaders, endStream: Bool)
    func backendData(_ data: ByteBuffer, endStream: Bool, flowControlled: Int)
    /// The stream ended without (more) frames: reset by the backend, or the connection was lost.
    func backendStreamClosed(reset: HTTP2ErrorCode?)
}

extension HTTP2Frame.FramePayload.Data {
    /// The bytes this frame counts against flow-control windows: the payload, plus the pad-length octet and
    /// the padding when padded (RFC 9113 §6.1).
    var windowBytes: Int {
        data.readableBytes + (paddingBytes.map { $0 + 1 } ?? 0)
    }
}
