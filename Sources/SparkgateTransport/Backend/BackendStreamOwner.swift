import NIOCore
import NIOHPACK
import NIOHTTP2

/// The owner of one backend stream: a proxied call, or one of Sparkgate's own calls.
package protocol BackendStreamOwner: AnyObject {
    func backendHeaders(_ headers: HPACKHeaders, endStream: Bool)
    func backendData(_ data: ByteBuffer, endStream: Bool, windowBytes: Int)
    /// The stream ended without (more) frames: reset by the backend, or the connection was lost (nil).
    func backendStreamClosed(reset: HTTP2ErrorCode?)
}
