import Logging
import NIOCore
import NIOHTTP2
import NIOSSL
import SparkgateCore
import SparkgateObservability

/// The backend connection of one endpoint on one event loop. It connects on first use and again after the
/// connection closes, fills up its stream ids, or the backend sends GOAWAY, so a restarted backend is picked
/// up without restarting Sparkgate. Only touched on its event loop.
package final class BackendConnection {
    private enum State {
        case idle
        case connecting(EventLoopFuture<BackendConnectionHandler>)
        case ready(BackendConnectionHandler)
    }

    package let endpoint: BackendEndpoint
    package let loop: LoopContext
    package let connector: any BackendConnector
    package let metrics: GatewayMetrics
    private var state = State.idle
    private let onUpChange: (Bool) -> Void

    package init(
        endpoint: BackendEndpoint, loop: LoopContext, connector: any BackendConnector, metrics: GatewayMetrics,
        onUpChange: @escaping (Bool) -> Void
    ) {
        self.endpoint = endpoint
        self.loop = loop
        self.connector = connector
        self.metrics = metrics
        self.onUpChange = onUpChange
    }

    /// The connection's handler when it is up and takes new streams.
    var connectedHandler: BackendConnectionHandler? {
        if case .ready(let handler) = state, handler.isUsable { return handler }
        return nil
    }

    /// A connection that can take a new stream, connecting first when needed.
    package func handler(
        tls: NIOSSLContext?, connectTimeout: TimeAmount, limits: ConnectionLimits
    ) -> EventLoopFuture<BackendConnectionHandler> {
        switch state {
        case .ready(let handler) where handler.isUsable:
            return loop.eventLoop.assumeIsolated().makeSucceededFuture(handler)
        case .connecting(let future):
            return future
        case .ready, .idle:
            let future = connect(tls: tls, connectTimeout: connectTimeout, limits: limits)
            state = .connecting(future)
            future.assumeIsolated().whenComplete { [self] result in
                switch result {
                case .success(let handler):
                    state = .ready(handler)
                    onUpChange(true)
                case .failure:
                    if case .connecting = state { state = .idle }
                    onUpChange(false)
                }
            }
            return future
        }
    }

    private func connect(
        tls: NIOSSLContext?, connectTimeout: TimeAmount, limits: ConnectionLimits
    ) -> EventLoopFuture<BackendConnectionHandler> {
        let endpoint = self.endpoint
        return connector.connect(to: endpoint, on: loop.eventLoop, timeout: connectTimeout).assumeIsolated()
            .flatMapThrowing { [self] channel in
                let sync = channel.pipeline.syncOperations
                if let tls {
                    let isAddress = endpoint.address.host.first?.isNumber == true || endpoint.address.host.contains(":")
                    try sync.addHandler(
                        try NIOSSLClientHandler(context: tls, serverHostname: isAddress ? nil : endpoint.address.host))
                }
                try sync.addHandler(HTTP2Tuning.backendHandler())
                // A strong capture: the handler lives only as long as its channel, and a weak one would put every
                // retain of this connection (one per call) on the runtime's slow path.
                let handler = BackendConnectionHandler(loop: loop, endpoint: endpoint, limits: limits, metrics: metrics)
                { [self] in closed() }
                try sync.addHandler(handler)
                return handler
            }.nonisolated()
    }

    private func closed() {
        if case .ready(let handler) = state, !handler.isUsable {
            state = .idle
            onUpChange(false)
        }
    }

    package func close() {
        if case .ready(let handler) = state {
            state = .idle
            handler.close()
        }
    }
}
