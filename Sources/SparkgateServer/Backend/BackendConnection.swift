import Logging
import NIOCore
import NIOHTTP2
import NIOPosix
import NIOSSL
import SparkgateCore

/// One HTTP/2 connection to a backend endpoint, owned by one event loop, carrying many streams.
///
/// It connects on first use and again after it closes or the backend sends GOAWAY, so a restarted backend
/// is picked up without restarting Sparkgate. Only touched on its event loop.
final class BackendConnection {
    enum State {
        case idle
        case connecting(EventLoopFuture<NIOHTTP2Handler.StreamMultiplexer>)
        case ready(any Channel, NIOHTTP2Handler.StreamMultiplexer)
    }

    let endpoint: BackendEndpoint
    let eventLoop: any EventLoop
    private var state: State = .idle
    private let tlsContext: NIOSSLContext?
    private let connectTimeout: TimeAmount
    private let logger: Logger
    private let onUpChange: (Bool) -> Void

    init(endpoint: BackendEndpoint, eventLoop: any EventLoop, tlsContext: NIOSSLContext?, connectTimeout: TimeAmount, logger: Logger, onUpChange: @escaping (Bool) -> Void) {
        self.endpoint = endpoint
        self.eventLoop = eventLoop
        self.tlsContext = tlsContext
        self.connectTimeout = connectTimeout
        self.logger = logger
        self.onUpChange = onUpChange
    }

    /// Opens a stream whose pipeline `initializer` sets up.
    func openStream(_ initializer: @escaping NIOChannelInitializer) -> EventLoopFuture<any Channel> {
        eventLoop.assertInEventLoop()
        return multiplexer().flatMap { mux in
            let promise = self.eventLoop.makePromise(of: Channel.self)
            mux.createStreamChannel(promise: promise, initializer)
            return promise.futureResult
        }
    }

    private func multiplexer() -> EventLoopFuture<NIOHTTP2Handler.StreamMultiplexer> {
        switch state {
        case .ready(_, let mux):
            return eventLoop.makeSucceededFuture(mux)
        case .connecting(let future):
            return future
        case .idle:
            let future = connect()
            state = .connecting(future)
            future.whenComplete { result in
                switch result {
                case .success:
                    break  // `ready` is set by the connect pipeline once the channel is up
                case .failure:
                    if case .connecting = self.state { self.state = .idle }
                    self.onUpChange(false)
                }
            }
            return future
        }
    }

    private func connect() -> EventLoopFuture<NIOHTTP2Handler.StreamMultiplexer> {
        let endpoint = self.endpoint
        let tls = self.tlsContext
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelOption(ChannelOptions.autoRead, value: true)
        return bootstrap.connect(host: endpoint.address.host, port: endpoint.address.port).flatMapThrowing { channel in
            let sync = channel.pipeline.syncOperations
            if let tls {
                let sni = endpoint.address.host.first?.isNumber == true || endpoint.address.host.contains(":") ? nil : endpoint.address.host
                try sync.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: sni))
            }
            let mux = try sync.configureHTTP2Pipeline(
                mode: .client,
                connectionConfiguration: HTTP2Tuning.backendConnection,
                streamConfiguration: HTTP2Tuning.stream,
                inboundStreamInitializer: { channel in channel.close() })
            try sync.addHandler(GoAwayWatcher { [weak self] in self?.retire(channel) })
            self.state = .ready(channel, mux)
            self.onUpChange(true)
            channel.closeFuture.whenComplete { _ in self.retire(channel) }
            return mux
        }
    }

    /// Stops giving out streams on `channel`: existing streams finish, new ones get a new connection.
    private func retire(_ channel: any Channel) {
        if case .ready(let current, _) = state, current === channel {
            state = .idle
            if !channel.isActive { onUpChange(false) }
        }
    }

    func close() {
        if case .ready(let channel, _) = state {
            state = .idle
            channel.close(promise: nil)
        }
    }
}

/// Tells the owner when the backend sends GOAWAY, so no new stream is put on a closing connection.
private final class GoAwayWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame
    let onGoAway: () -> Void

    init(onGoAway: @escaping () -> Void) {
        self.onGoAway = onGoAway
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .goAway = unwrapInboundIn(data).payload { onGoAway() }
        context.fireChannelRead(data)
    }
}
