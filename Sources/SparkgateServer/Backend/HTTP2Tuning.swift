import NIOHTTP2

/// HTTP/2 settings for both sides. Stream windows bound what one stream can buffer in the gateway; the
/// connection window is larger so one slow stream never stalls the others on its connection.
enum HTTP2Tuning {
    static let streamWindow = 1 << 20
    static let connectionWindow = 16 << 20
    static let maxFrameSize = 1 << 20
    /// The most one direction of one stream holds in the gateway beyond its window (two large messages).
    static let maxBufferedPerStream = 32 << 20
    /// Connection-level window goes back in batches of this size: well under even the protocol's initial
    /// 65,535 bytes, so a peer that has not seen our larger window yet can never stall.
    static let connectionCreditBatch = 16 << 10

    static var settings: HTTP2Settings {
        [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 4096),
            HTTP2Setting(parameter: .initialWindowSize, value: streamWindow),
            HTTP2Setting(parameter: .maxFrameSize, value: maxFrameSize),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 1 << 16),
        ]
    }

    static var frontendConnection: NIOHTTP2Handler.ConnectionConfiguration {
        var c = NIOHTTP2Handler.ConnectionConfiguration()
        c.initialSettings = settings
        c.targetWindowSize = connectionWindow
        c.maximumConnectionGlitches = 1000
        return c
    }

    static var backendConnection: NIOHTTP2Handler.ConnectionConfiguration {
        var c = NIOHTTP2Handler.ConnectionConfiguration()
        c.initialSettings = settings
        // The backend is a trusted peer and every header it sends was validated on the way in from clients.
        c.headerBlockValidation = .disabled
        c.targetWindowSize = connectionWindow
        return c
    }

    static var stream: NIOHTTP2Handler.StreamConfiguration {
        var s = NIOHTTP2Handler.StreamConfiguration()
        s.targetWindowSize = streamWindow
        s.outboundBufferSizeHighWatermark = 1 << 20
        s.outboundBufferSizeLowWatermark = 256 << 10
        return s
    }
}
