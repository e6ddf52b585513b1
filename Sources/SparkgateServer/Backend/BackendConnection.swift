import Logging
import NIOCore
import NIOHTTP2
import NIOPosix
import NIOSSL

/// The backend connection of one endpoint on one event loop. It connects on first use and again after the
/// connection closes, fills up its stream ids, or the backend sends GOAWAY, so a restarted backend is picked
/// up without restarting Sparkgate. Only touched on its event loop.
final class BackendConnection {
    private enum State {
        case idle
        case connecting(EventLoopFuture<BackendConnectionHandler>)
        case ready(BackendConnectionHandler)
    }

    let endpoint: BackendEndpoint
    let loop: LoopContext
    private var state = State.idle
    private let onUpChange: (Bool) -> Void

    init(endpoint: BackendEndpoint, loop: LoopContext, onUpChange: @escaping (Bool) -> Void) {
        self.endpoint = endpoint
        self.loop = loop
        self.onUpChange = onUpChange
    }

    /// A connection that can take a new stream, connecting first when needed.
    func handler(tls: NIOSSLContext?, connectTimeout: TimeAmount) -> EventLoopFuture<BackendConnectionHandler> {
        switch state {
        case .ready(let handler) where handler.isUsable:
            return loop.eventLoop.makeSucceededFuture(handler)
        case .connecting(let future):
            return future
        case .ready, .idle:
            let future = connect(tls: tls, connectTimeout: connectTimeout)
            state = .connecting(future)
            future.whenComplete { result in
                switch result {
                case .success(let handler):
                    self.state = .ready(handler)
                    self.onUpChange(true)
                case .failure:
                    if case .connecting = self.state { self.state = .idle }
                    self.onUpChange(false)
                }
            }
            return future
        }
    }

    private func connect(tls: NIOSSLContext?, connectTimeout: TimeAmount) -> EventLoopFuture<BackendConnectionHandler> {
        let endpoint = self.endpoint
        let loop = self.loop
        return ClientBootstrap(group: loop.eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connect(host: endpoint.address.host, port: endpoint.address.port)
            .flatMapThrowing { channel in
                let sync = channel.pipeline.syncOperations
                if let tls {
                    let isAddress = endpoint.address.host.first?.isNumber == true || endpoint.address.host.contains(":")
                    try sync.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: isAddress ? nil : endpoint.address.host))
                }
                try sync.addHandler(NIOHTTP2Handler(mode: .client, connectionConfiguration: HTTP2Tuning.backendConnection, streamConfiguration: HTTP2Tuning.stream))
                let handler = BackendConnectionHandler(loop: loop, endpoint: endpoint) { [weak self] in self?.closed(channel) }
                try sync.addHandler(handler)
                return handler
            }
    }

    private func closed(_ channel: any Channel) {
        if case .ready(let handler) = state, !handler.isUsable {
            state = .idle
            onUpChange(false)
        }
    }

    func close() {
        if case .ready(let handler) = state {
            state = .idle
            handler.close()
        }
    }
}
