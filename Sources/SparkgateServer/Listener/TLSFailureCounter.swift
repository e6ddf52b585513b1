import NIOCore
import NIOSSL
import NIOTLS
import SparkgateObservability

/// Counts failed TLS handshakes (a client without the right certificate, a plaintext client, a bad CA).
final class TLSFailureCounter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let metrics: GatewayMetrics
    private var handshakeDone = false

    init(metrics: GatewayMetrics) {
        self.metrics = metrics
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            handshakeDone = true
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !handshakeDone && (error is NIOSSLError || error is BoringSSLError) {
            handshakeDone = true
            metrics.tlsHandshakeFailed()
        }
        context.fireErrorCaught(error)
    }
}
