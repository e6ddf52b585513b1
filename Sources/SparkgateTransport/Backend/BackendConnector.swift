import NIOCore
import NIOPosix

/// How the gateway reaches a backend endpoint: TCP by default; tests put an in-memory channel here.
package protocol BackendConnector: Sendable {
    func connect(
        to endpoint: BackendEndpoint, on eventLoop: any EventLoop, timeout: TimeAmount
    ) -> EventLoopFuture<any Channel>
}

package struct TCPBackendConnector: BackendConnector {
    package init() {}

    package func connect(
        to endpoint: BackendEndpoint, on eventLoop: any EventLoop, timeout: TimeAmount
    ) -> EventLoopFuture<any Channel> {
        ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connect(host: endpoint.address.host, port: endpoint.address.port)
    }
}
