import NIOCore
import NIOHTTP2
import NIOSSL
import SparkgateCore
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport

/// The handlers of one client connection. On a TLS port a `ProtocolSniffer` looks at the first bytes:
/// TLS gets TLS, HTTP/2 and the connection handler that routes each stream to its call; plaintext HTTP/2
/// gets an answer saying to use TLS. Used by the listener, and by tests on in-memory channels.
package enum GatewayPipeline {
    package static func configure(_ channel: any Channel, parts: ConnectionParts) throws {
        let state = parts.generation()
        let peer = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "unknown"
        let lifecycle = ConnectionLifecycleDriver(
            channel: channel, limits: state.config.limits, metrics: parts.metrics)
        channel.closeFuture.assumeIsolated().whenComplete { _ in lifecycle.stop() }
        let sync = channel.pipeline.syncOperations
        guard let tls = state.serverTLS else {
            lifecycle.handle(.accepted(tls: false))
            return try addHTTP2(sync, parts: parts, limits: state.config.limits, lifecycle: lifecycle, peer: peer)
        }
        lifecycle.handle(.accepted(tls: true))
        try sync.addHandler(
            ProtocolSniffer { kind, context in
                let sync = context.pipeline.syncOperations
                switch kind {
                case .plaintextHTTP2:
                    parts.metrics.limitEvent(.plaintextToTLSPort)
                    parts.handshakeFailures.record(
                        peer: peer, reason: "the client spoke HTTP/2 without TLS (its URL lacks ;use_ssl=true)")
                    try sync.addHandler(
                        HTTP2Tuning.frontendHandler(state.config.limits), position: .after(context.handler))
                    try sync.addHandler(PlaintextRefusal(), position: .last)
                case .tls, .other, .needMore:
                    let observer = TLSHandshakeObserver(
                        metrics: parts.metrics, lifecycle: lifecycle, failures: parts.handshakeFailures, peer: peer)
                    try sync.addHandler(NIOSSLServerHandler(context: tls), position: .after(context.handler))
                    try sync.addHandler(observer, position: .last)
                    try addHTTP2(sync, parts: parts, limits: state.config.limits, lifecycle: lifecycle, peer: peer)
                }
            })
    }

    private static func addHTTP2(
        _ sync: ChannelPipeline.SynchronousOperations, parts: ConnectionParts, limits: ConnectionLimits,
        lifecycle: ConnectionLifecycleDriver, peer: String
    ) throws {
        // No multiplexer: streams are not channels. One handler routes every stream's frames to its call.
        try sync.addHandler(HTTP2Tuning.frontendHandler(limits), position: .last)
        let loop = parts.pool.context(on: sync.eventLoop)
        try sync.addHandler(
            FrontendConnectionHandler(parts: parts, peer: peer, loop: loop, lifecycle: lifecycle), position: .last)
    }
}
