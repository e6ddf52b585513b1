import Logging
import NIOCore
import NIOSSL
import NIOTLS
import SparkgateCore
import SparkgateEngines
import SparkgateObservability
import SparkgateSharedState
import SparkgateTransport
import Synchronization

/// Watches a connection's TLS handshake: its end stops the handshake timer; a failure is counted, and
/// logged at notice level once per peer address a minute with its reason (an unknown CA, no shared cipher,
/// no ALPN h2), so an operator sees why a user cannot connect.
final class TLSHandshakeObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let metrics: GatewayMetrics
    private let lifecycle: ConnectionLifecycleDriver
    private let failures: HandshakeFailureLog
    private let peer: String
    private var done = false

    init(metrics: GatewayMetrics, lifecycle: ConnectionLifecycleDriver, failures: HandshakeFailureLog, peer: String) {
        self.metrics = metrics
        self.lifecycle = lifecycle
        self.failures = failures
        self.peer = peer
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            done = true
            lifecycle.handle(.handshakeCompleted)
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done && (error is NIOSSLError || error is BoringSSLError) {
            done = true
            metrics.tlsHandshakeFailed()
            failures.record(peer: peer, reason: Self.describe(error))
        }
        context.fireErrorCaught(error)
    }

    static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("NO_SHARED_CIPHER") { return "no cipher suite in common" }
        if text.contains("NO_APPLICATION_PROTOCOL") {
            return "the client does not offer ALPN h2 (it must speak HTTP/2)"
        }
        if text.contains("UNKNOWN_CA") || text.contains("unknown ca") {
            return "the client does not trust the gateway's certificate authority"
        }
        if text.contains("CERTIFICATE_REQUIRED") || text.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") {
            return "the client sent no certificate (tls.client_ca requires one)"
        }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("HTTP_REQUEST") {
            return "the client did not start a TLS handshake"
        }
        return text.count > 200 ? String(text.prefix(200)) : text
    }
}

/// Logs handshake failures at most once per peer address a minute, remembering a bounded number of peers.
final class HandshakeFailureLog: Sendable {
    static let interval = 60.0
    static let capacity = 1024
    private let logged = Mutex<[String: Double]>([:])
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func record(peer: String, reason: String) {
        let address = String(peer.split(separator: ":").dropLast().joined(separator: ":"))
        let now = WallClock.now()
        let due = logged.withLock { table -> Bool in
            if let last = table[address], now - last < Self.interval { return false }
            if table.count >= Self.capacity { table = table.filter { now - $0.value < Self.interval } }
            if table.count >= Self.capacity { return false }
            table[address] = now
            return true
        }
        if due {
            logger.notice("TLS handshake failed", metadata: ["peer": "\(peer)", "reason": "\(reason)"])
        }
    }
}
