/// Which headers cross the gateway, in each direction.
///
/// Pseudo-headers are rebuilt for each hop, hop-by-hop headers never cross, the client's `authorization`
/// (or `authentication`, from Spark's older JVM clients) is replaced by the backend's token, and `grpc-accept-encoding` is dropped so the backend never
/// compresses a response Sparkgate must read. `content-length` never crosses: Sparkgate rewrites message
/// bodies, so the length would be wrong on the other side. Everything else (custom metadata from the `sc://` URL,
/// `grpc-timeout`, `te`, `content-type`, trailers with `grpc-status-details-bin`) passes unchanged.
public enum MetadataPolicy {
    /// Whether a request header from the client goes to the backend.
    public static func forwardsRequestHeader(_ name: String) -> Bool {
        if name.utf8.first == UInt8(ascii: ":") { return false }
        switch name {
        case "authorization", "authentication", "grpc-accept-encoding", "content-length", "connection", "keep-alive",
            "proxy-connection",
            "transfer-encoding", "upgrade", "host", "http2-settings":
            return false
        default:
            return true
        }
    }

    /// Whether a response header or trailer from the backend goes to the client.
    public static func forwardsResponseHeader(_ name: String) -> Bool {
        if name.utf8.first == UInt8(ascii: ":") { return false }
        switch name {
        case "content-length", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
            "http2-settings":
            return false
        default:
            return true
        }
    }
}
