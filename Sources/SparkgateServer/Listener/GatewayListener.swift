import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP2
import NIOPosix
import NIOSSL
import ServiceLifecycle
import SparkgateCore
import SparkgateEngines
import SparkgateObservability
import SparkgateSharedState
import SparkgateTransport

/// The client-facing listener: TLS (or h2c in development), HTTP/2, and one `FrontendConnectionHandler` per
/// connection. On shutdown it stops accepting, sends GOAWAY on every connection, lets streams finish within
/// `shutdown_grace_seconds`, then ends what remains.
public final class GatewayListener: Service, Sendable {
    let parts: ConnectionParts
    /// Connections per client address, against `limits.max_connections_per_ip`.
    let limiter: ConnectionLimiter
    let group: any EventLoopGroup
    let connections = ConnectionRegistry()
    private let bound = NIOLockedValueBox<(any Channel)?>(nil)

    public convenience init(runtime: GatewayRuntime) {
        self.init(parts: runtime.connectionParts, limiter: runtime.connections, group: runtime.group)
    }

    init(parts: ConnectionParts, limiter: ConnectionLimiter, group: any EventLoopGroup) {
        self.parts = parts
        self.limiter = limiter
        self.group = group
    }

    private var logger: Logger { parts.logger }

    /// The address actually bound (useful with port 0).
    public var localAddress: SocketAddress? { bound.withLockedValue { $0?.localAddress } }

    public func run() async throws {
        let config = parts.generation().config
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in initialize(channel) }
            .bind(config.listen, key: "listen")
        bound.withLockedValue { $0 = server }
        logger.info(
            "Sparkgate is listening",
            metadata: [
                "listen": "\(server.localAddress.map { "\($0)" } ?? "\(config.listen)")", "tls": "\(config.tls != nil)",
                "mtls": "\(config.tls?.clientCA != nil)",
            ])
        let connections = self.connections
        try await withGracefulShutdownHandler {
            try await server.closedOrCancelled { connections.closeAll() }
        } onGracefulShutdown: { [self] in
            drain(server)
        }
        // The listening socket is closed; stay until the draining connections are gone (the grace timer
        // closes any left), so later services (audit flush, admin) outlive the last call.
        let limit = ContinuousClock.now + .seconds(parts.generation().config.shutdownGraceSeconds + 2)
        while connections.count > 0 && ContinuousClock.now < limit && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private func drain(_ server: any Channel) {
        let grace = parts.generation().config.shutdownGraceSeconds
        logger.info(
            "draining: no new connections, finishing in-flight calls",
            metadata: ["connections": "\(connections.count)", "grace.seconds": "\(grace)"])
        let connections = self.connections
        let metrics = parts.metrics
        let calls = parts.registry
        let logger = self.logger
        server.close().whenComplete { _ in
            connections.quiesceAll()
            metrics.connection("draining", delta: connections.count)
        }
        server.eventLoop.scheduleTask(in: .nanoseconds(Int64(grace * 1e9))) {
            if connections.count > 0 {
                logger.warning(
                    "grace period over; cancelling the calls still running",
                    metadata: ["calls": "\(calls.count)"])
                calls.terminateAll(
                    with: .unavailable("Sparkgate is shutting down; retry to reach another instance"))
                connections.closeAll()
            }
        }
    }

    private func initialize(_ channel: any Channel) -> EventLoopFuture<Void> {
        let parts = self.parts
        let limiter = self.limiter
        let connections = self.connections
        return channel.eventLoop.makeCompletedFuture {
            // Past a connection cap the connection is closed at once, before TLS costs anything.
            let address = channel.remoteAddress?.ipAddress ?? "unknown"
            if let full = limiter.admit(address, limits: parts.generation().config.limits) {
                parts.metrics.limitEvent(full)
                throw ConnectionRefused()
            }
            channel.closeFuture.whenComplete { _ in limiter.release(address) }
            try GatewayPipeline.configure(channel, parts: parts)
            connections.add(channel)
            parts.metrics.connection("open", delta: 1)
            channel.closeFuture.whenComplete { _ in parts.metrics.connection("open", delta: -1) }
        }
    }
}

private struct ConnectionRefused: Error {}
