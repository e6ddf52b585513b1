import NIOCore
import NIOHPACK
import NIOHTTP2
import SparkgateCore
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport

/// Answers every stream of a plaintext HTTP/2 connection to the TLS port with a status that tells the
/// client what to change, then closes the connection.
final class PlaintextRefusal: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    static let error = SparkgateError(
        .failedPrecondition,
        "this Sparkgate port speaks TLS: connect with sc://HOST:PORT/;use_ssl=true;token=... (and make the client trust the gateway's CA)"
    )

    private var answered = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard case .headers = frame.payload, frame.streamID != .rootStream else { return }
        context.write(
            wrapOutboundOut(
                HTTP2Frame(
                    streamID: frame.streamID,
                    payload: .headers(
                        .init(headers: ResponseHeaders.status(Self.error, trailersOnly: true), endStream: true)))),
            promise: nil)
        if !answered {
            answered = true
            context.write(
                wrapOutboundOut(
                    HTTP2Frame(
                        streamID: .rootStream,
                        payload: .goAway(lastStreamID: frame.streamID, errorCode: .noError, opaqueData: nil))),
                promise: nil)
            // The client reads the answer, then the connection goes.
            context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) { context.close(promise: nil) }
        }
        context.flush()
    }
}
