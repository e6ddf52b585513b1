import NIOHTTP2
import SparkgateCore

/// HTTP/2 settings for both sides. Stream windows bound what one stream can make the gateway hold; the
/// connection window is larger so one slow stream never stalls the others on its connection.
///
/// Both sides run on libnghttp2 (`NGHTTP2ChannelHandler`); flow control is `CallStateMachine`'s (window
/// goes back as bytes leave the gateway).
package enum HTTP2Tuning {
    package static let streamWindow = 1 << 20
    package static let connectionWindow = 16 << 20
    package static let maxFrameSize = 1 << 20
    /// The most one direction of one stream holds in the gateway beyond its window (two large messages).
    package static let maxBufferedPerStream = 32 << 20

    package static func settings(maxConcurrentStreams: Int, maxHeaderListBytes: Int) -> NGHTTP2Session.Settings {
        NGHTTP2Session.Settings(
            maxConcurrentStreams: maxConcurrentStreams, initialWindowSize: streamWindow, maxFrameSize: maxFrameSize,
            maxHeaderListSize: maxHeaderListBytes,
            connectionWindow: 65_535)
    }

    /// The HTTP/2 handler of a client connection: `limits` set the streams a client may open at once and the
    /// largest header block it may send. libnghttp2's own protections stay at their defaults (rapid resets,
    /// CONTINUATION runs, SETTINGS floods, header block size). The connection window starts at the protocol's
    /// 65,535 bytes; it grows once a call authenticates (`FrontendConnectionHandler`).
    package static func frontendHandler(_ limits: ConnectionLimits) -> NGHTTP2ChannelHandler {
        NGHTTP2ChannelHandler(
            role: .server,
            settings: settings(
                maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListBytes: limits.maxHeaderListBytes))
    }

    /// The HTTP/2 handler of a backend connection.
    package static func backendHandler() -> NGHTTP2ChannelHandler {
        NGHTTP2ChannelHandler(
            role: .client, settings: settings(maxConcurrentStreams: 4096, maxHeaderListBytes: 1 << 20))
    }
}
