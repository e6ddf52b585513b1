import Logging
import NIOCore
import NIOHTTP2
import NIOSSL
import SparkgateCore
import SparkgateObservability
import Synchronization

/// The backend connections of every event loop. A client stream and the backend stream it is glued to
/// live on the same event loop, so forwarding never crosses threads or takes a lock.
final class BackendPool: Sendable {
    private let loops: [ObjectIdentifier: NIOLoopBoundBox<LoopPool>]
    private let metrics: GatewayMetrics
    private let logger: Logger

    init(group: any EventLoopGroup, metrics: GatewayMetrics, logger: Logger) {
        var loops: [ObjectIdentifier: NIOLoopBoundBox<LoopPool>] = [:]
        for loop in group.makeIterator() {
            loops[ObjectIdentifier(loop)] = NIOLoopBoundBox.makeBoxSendingValue(LoopPool(), eventLoop: loop)
        }
        self.loops = loops
        self.metrics = metrics
        self.logger = logger
    }

    /// Opens a stream to `endpoint` on `eventLoop`, connecting first if needed.
    func openStream(
        to endpoint: BackendEndpoint, on eventLoop: any EventLoop, tls: NIOSSLContext?, connectTimeout: TimeAmount,
        _ initializer: @escaping NIOChannelInitializer
    ) -> EventLoopFuture<any Channel> {
        // Sparkgate's own calls (reaper, admin) come from tasks off the loop: hop on first.
        guard eventLoop.inEventLoop else {
            return eventLoop.flatSubmit { self.openStream(to: endpoint, on: eventLoop, tls: tls, connectTimeout: connectTimeout, initializer) }
        }
        guard let pool = loops[ObjectIdentifier(eventLoop)]?.value else {
            return eventLoop.makeFailedFuture(SparkgateError.unavailable("no backend pool on this event loop"))
        }
        let metrics = self.metrics
        let connection = pool.connection(for: endpoint) {
            BackendConnection(
                endpoint: endpoint, eventLoop: eventLoop, tlsContext: tls, connectTimeout: connectTimeout, logger: logger,
                onUpChange: { up in metrics.backend(endpoint.backend, endpoint: endpoint.description, up: up) })
        }
        return connection.openStream(initializer)
    }

    /// Closes connections to endpoints no longer configured (after a reload).
    func retain(only endpoints: Set<BackendEndpoint>) {
        for bound in loops.values {
            let loop = bound.eventLoop
            loop.execute { bound.value.retain(only: endpoints) }
        }
    }

    func closeAll() {
        for bound in loops.values {
            bound.eventLoop.execute { bound.value.retain(only: []) }
        }
    }
}

/// One event loop's connections, by endpoint.
private final class LoopPool {
    private var connections: [BackendEndpoint: BackendConnection] = [:]

    func connection(for endpoint: BackendEndpoint, make: () -> BackendConnection) -> BackendConnection {
        if let c = connections[endpoint] { return c }
        let c = make()
        connections[endpoint] = c
        return c
    }

    func retain(only endpoints: Set<BackendEndpoint>) {
        for (endpoint, connection) in connections where !endpoints.contains(endpoint) {
            connection.close()
            connections.removeValue(forKey: endpoint)
        }
    }
}
