import NIOCore
import SparkgateCore
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport

/// The first handler on the TLS port: reads a new connection's first bytes and sets up the rest of its
/// pipeline for what they are. A TLS handshake gets TLS and HTTP/2; plaintext HTTP/2 (a client without
/// `;use_ssl=true`) gets an HTTP/2 answer it can read, saying so, instead of a failed handshake it would
/// retry for minutes.
final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var buffered: ByteBuffer?
    private let decide: (FirstBytes, ChannelHandlerContext) throws -> Void

    /// `decide` adds the handlers that follow this one for what the bytes are.
    init(decide: @escaping (FirstBytes, ChannelHandlerContext) throws -> Void) {
        self.decide = decide
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if var b = buffered {
            b.writeBuffer(&incoming)
            buffered = b
        } else {
            buffered = incoming
        }
        guard let bytes = buffered else { return }
        let kind = FirstBytes.classify(bytes.readableBytesView)
        guard kind != .needMore else { return }
        do {
            try decide(kind, context)
        } catch {
            context.close(promise: nil)
            return
        }
        buffered = nil
        context.fireChannelRead(wrapInboundOut(bytes))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
