import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP2
import NIOPosix
import NIOSSL
import ServiceLifecycle
import SparkgateCore
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport

/// The client-facing listener: TLS (or h2c in development), HTTP/2, and one `FrontendConnectionHandler` per
/// connection. On shutdown it stops accepting, sends GOAWAY on every connection, lets streams finish within
/// `shutdown_grace_seconds`, then ends what remains.
public final class GatewayListener: Service, Sendable {
    let runtime: GatewayRuntime
    let connections = ConnectionRegistry()
    private let bound = NIOLockedValueBox<(any Channel)?>(nil)

    public init(runtime: GatewayRuntime) {
        self.runtime = runtime
    }

    /// The address actually bound (useful with port 0).
    public var localAddress: SocketAddress? { bound.withLockedValue { $0?.localAddress } }

    public func run() async throws {
        let config = runtime.state.config
        let server = try await ServerBootstrap(group: runtime.group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in initialize(channel) }
            .bind(host: config.listen.host, port: config.listen.port)
            .get()
        bound.withLockedValue { $0 = server }
        runtime.logger.info(
            "Sparkgate is listening",
            metadata: [
                "listen": "\(server.localAddress.map { "\($0)" } ?? "\(config.listen)")", "tls": "\(config.tls != nil)",
                "mtls": "\(config.tls?.clientCA != nil)",
            ])
        try await withGracefulShutdownHandler {
            try await server.closeFuture.get()
        } onGracefulShutdown: { [self] in
            drain(server)
        }
        // The listening socket is closed; stay until the draining connections are gone (the grace timer
        // closes any left), so later services (audit flush, admin) outlive the last call.
        let limit = ContinuousClock.now + .seconds(runtime.state.config.shutdownGraceSeconds + 2)
        while connections.count > 0 && ContinuousClock.now < limit {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private func drain(_ server: any Channel) {
        let grace = runtime.state.config.shutdownGraceSeconds
        runtime.logger.info(
            "draining: no new connections, finishing in-flight calls",
            metadata: ["connections": "\(connections.count)", "grace.seconds": "\(grace)"])
        let connections = self.connections
        let runtime = self.runtime
        server.close().whenComplete { _ in
            connections.quiesceAll()
            runtime.metrics.connection("draining", delta: connections.count)
        }
        server.eventLoop.scheduleTask(in: .nanoseconds(Int64(grace * 1e9))) {
            if connections.count > 0 {
                runtime.logger.warning(
                    "grace period over; cancelling the calls still running",
                    metadata: ["calls": "\(runtime.calls.count)"])
                runtime.calls.terminateAll(
                    with: .unavailable("Sparkgate is shutting down; retry to reach another instance"))
                connections.closeAll()
            }
        }
    }

    private func initialize(_ channel: any Channel) -> EventLoopFuture<Void> {
        let runtime = self.runtime
        let connections = self.connections
        return channel.eventLoop.makeCompletedFuture {
            // Past a connection cap the connection is closed at once, before TLS costs anything.
            let address = channel.remoteAddress?.ipAddress ?? "unknown"
            if let full = runtime.connections.admit(address, limits: runtime.state.config.limits) {
                runtime.metrics.limitEvent(full)
                throw ConnectionRefused()
            }
            channel.closeFuture.whenComplete { _ in runtime.connections.release(address) }
            try GatewayPipeline.configure(channel, runtime: runtime)
            connections.add(channel)
            runtime.metrics.connection("open", delta: 1)
            channel.closeFuture.whenComplete { _ in runtime.metrics.connection("open", delta: -1) }
        }
    }
}

private struct ConnectionRefused: Error {}
