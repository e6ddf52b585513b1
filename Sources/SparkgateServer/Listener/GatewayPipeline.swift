import NIOCore
import NIOSSL

/// The handlers of one client connection: TLS (unless plaintext), HTTP/2, and the connection handler that
/// routes each stream to its call. Used by the listener, and by tests on in-memory channels.
enum GatewayPipeline {
    static func configure(_ channel: any Channel, runtime: GatewayRuntime) throws {
        let state = runtime.state
        let sync = channel.pipeline.syncOperations
        if let tls = state.serverTLS {
            try sync.addHandler(NIOSSLServerHandler(context: tls))
            try sync.addHandler(TLSFailureCounter(metrics: runtime.metrics))
        }
        let peer = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "unknown"
        // No multiplexer: streams are not channels. One handler routes every stream's frames to its call.
        try sync.addHandler(HTTP2Tuning.frontendHandler())
        try sync.addHandler(FrontendConnectionHandler(runtime: runtime, peer: peer, loop: runtime.pool.context(on: channel.eventLoop)))
    }
}
