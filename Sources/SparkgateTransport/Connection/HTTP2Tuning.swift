import NIOHTTP2
import SparkgateCore

/// HTTP/2 settings for both sides. Stream windows bound what one stream can make the gateway hold; the
/// connection window is larger so one slow stream never stalls the others on its connection.
///
/// Only settings that take effect without a stream multiplexer are set: the handler's own window targets
/// and outbound watermarks apply to multiplexed stream channels, which Sparkgate does not use (flow
/// control is `CallStateMachine`'s).
package enum HTTP2Tuning {
    package static let streamWindow = 1 << 20
    package static let connectionWindow = 16 << 20
    package static let maxFrameSize = 1 << 20
    /// The most one direction of one stream holds in the gateway beyond its window (two large messages).
    package static let maxBufferedPerStream = 32 << 20

    package static func settings(maxConcurrentStreams: Int, maxHeaderListBytes: Int) -> HTTP2Settings {
        [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: maxConcurrentStreams),
            HTTP2Setting(parameter: .initialWindowSize, value: streamWindow),
            HTTP2Setting(parameter: .maxFrameSize, value: maxFrameSize),
            HTTP2Setting(parameter: .maxHeaderListSize, value: maxHeaderListBytes),
        ]
    }

    /// The HTTP/2 handler of a client connection: `limits` set the streams a client may open at once and the
    /// largest header block it may send. NIOHTTP2's own protections stay at their defaults (glitches, resets,
    /// control frames, CONTINUATION runs, empty DATA frames).
    package static func frontendHandler(_ limits: ConnectionLimits) -> NIOHTTP2Handler {
        var c = NIOHTTP2Handler.ConnectionConfiguration()
        c.initialSettings = settings(maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListBytes: limits.maxHeaderListBytes)
        return NIOHTTP2Handler(mode: .server, frameDelegate: nil, connectionConfiguration: c, streamConfiguration: .init())
    }

    /// The HTTP/2 handler of a backend connection.
    package static func backendHandler() -> NIOHTTP2Handler {
        var c = NIOHTTP2Handler.ConnectionConfiguration()
        c.initialSettings = settings(maxConcurrentStreams: 4096, maxHeaderListBytes: 1 << 20)
        // The backend is a trusted peer and every header it sends was validated on the way in from clients.
        c.headerBlockValidation = .disabled
        return NIOHTTP2Handler(mode: .client, frameDelegate: nil, connectionConfiguration: c, streamConfiguration: .init())
    }
}
