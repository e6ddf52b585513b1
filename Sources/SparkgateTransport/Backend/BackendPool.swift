import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOSSL
import SparkgateCore
import SparkgateObservability

/// Every event loop's `LoopContext`. A client stream and the backend stream it is glued to live on the same
/// event loop, so forwarding never crosses threads or takes a lock.
package final class BackendPool: Sendable {
    private let loops: [ObjectIdentifier: NIOLoopBoundBox<LoopContext>]
    private let metrics: GatewayMetrics
    private let connector: any BackendConnector

    package init(
        group: any EventLoopGroup, metrics: GatewayMetrics, connector: any BackendConnector = TCPBackendConnector()
    ) {
        var loops: [ObjectIdentifier: NIOLoopBoundBox<LoopContext>] = [:]
        for loop in group.makeIterator() {
            loops[ObjectIdentifier(loop)] = NIOLoopBoundBox.makeBoxSendingValue(
                LoopContext(eventLoop: loop), eventLoop: loop)
        }
        self.loops = loops
        self.metrics = metrics
        self.connector = connector
    }

    /// The context of `eventLoop`; call on that loop.
    package func context(on eventLoop: any EventLoop) -> LoopContext {
        loops[ObjectIdentifier(eventLoop)]!.value
    }

    /// Opens a stream to `endpoint` for `owner` at once when its connection is up: the common case, without the
    /// futures of `openStream`. Nil when the connection is not up yet (use `openStream`). Call on `eventLoop`.
    package func openStreamIfConnected(
        to endpoint: BackendEndpoint, on eventLoop: any EventLoop, owner: any BackendStreamOwner, headers: HPACKHeaders
    ) -> Result<(BackendConnectionHandler, HTTP2StreamID), any Error>? {
        guard let handler = context(on: eventLoop).backends[endpoint]?.connectedHandler else { return nil }
        guard let id = handler.openStream(for: owner, headers: headers) else {
            return .failure(BackendErrors.Draining())
        }
        return .success((handler, id))
    }

    /// Opens a stream to `endpoint` for `owner`, connecting first if needed; completes with the connection and
    /// the stream id. Call on `eventLoop`: the owner lives there.
    package func openStream(
        to endpoint: BackendEndpoint, on eventLoop: any EventLoop, tls: NIOSSLContext?, connectTimeout: TimeAmount,
        limits: ConnectionLimits,
        owner: any BackendStreamOwner, headers: HPACKHeaders
    ) -> EventLoopFuture<(BackendConnectionHandler, HTTP2StreamID)> {
        eventLoop.preconditionInEventLoop()
        let loop = context(on: eventLoop)
        let metrics = self.metrics
        let connection =
            loop.backends[endpoint]
            ?? {
                let c = BackendConnection(endpoint: endpoint, loop: loop, connector: connector, metrics: metrics) {
                    up in
                    metrics.backend(endpoint.backend, endpoint: endpoint.description, up: up)
                }
                loop.backends[endpoint] = c
                return c
            }()
        return connection.handler(tls: tls, connectTimeout: connectTimeout, limits: limits).assumeIsolated()
            .flatMapThrowing { handler in
                guard let id = handler.openStream(for: owner, headers: headers) else {
                    throw BackendErrors.Draining()
                }
                return (handler, id)
            }.nonisolated()
    }

    /// Closes connections to endpoints no longer configured (after a reload); launched engines' endpoints
    /// (backends in `launchPools`) come and go with their engines instead.
    package func retain(only endpoints: Set<BackendEndpoint>, launchPools: Set<String> = []) {
        for bound in loops.values {
            bound.eventLoop.execute {
                let loop = bound.value
                for (endpoint, connection) in loop.backends
                where !endpoints.contains(endpoint) && !launchPools.contains(endpoint.backend) {
                    connection.close()
                    loop.backends.removeValue(forKey: endpoint)
                }
            }
        }
    }

    /// Closes the connections to one endpoint (a launched engine that stopped).
    package func forget(_ endpoint: BackendEndpoint) {
        for bound in loops.values {
            bound.eventLoop.execute {
                bound.value.backends.removeValue(forKey: endpoint)?.close()
            }
        }
    }
}
