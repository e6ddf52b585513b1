import Foundation
import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import SparkgateAuth
import SparkgateCore

/// One client RPC, from its HEADERS to its trailers, glued to one backend stream on the same event loop.
///
/// The life of a request is a straight line: read the head → authenticate → read the first message →
/// admit it against the session table and quotas → rewrite its identity fields → open the backend stream →
/// pump messages both ways → forward the trailers → account. Reads on each side are only requested while
/// the other side can take more, so HTTP/2 flow control holds back whichever peer is faster.
final class FrontendStreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    enum Phase {
        case head
        case authorizing
        case awaitingFirstMessage
        case connecting
        case forwarding
        case closed
    }

    let runtime: GatewayRuntime
    let peer: String
    var context: ChannelHandlerContext!
    var phase = Phase.head
    let startedAt = NIODeadline.now()

    // Set by the head.
    var state: GatewayState!
    var head = RequestHead()
    var clientHeaders = HPACKHeaders()
    var method = SparkConnectMethod.other("")
    var verified: VerifiedToken?
    var team: SparkgateConfig.Team?
    var requests: GRPCMessageReader
    var deadline: Scheduled<Void>?

    // Set by the first message.
    var firstEnvelope: RequestEnvelope?
    var rewrite: RequestRewrite?
    var responseRewrite = ResponseRewrite()
    var sessionKey: SessionKey?
    var operationKey: OperationKey?
    var admitted = false
    var registration: UInt64?
    var resultLimitActive = false
    var backendName = ""

    // Request side.
    var clientEnded = false
    var pendingToBackend: [ByteBuffer] = []
    var backend: BackendStreamHandler?
    var backendNeedsFlush = false

    // Response side.
    var responses: GRPCMessageReader
    var responseStarted = false
    var clientNeedsFlush = false
    var sawResultComplete = false
    var firstResponseSeen = false
    var interruptedIDs: [String] = []

    var summary: CallSummary

    init(runtime: GatewayRuntime, peer: String, maxMessageBytes: Int) {
        self.runtime = runtime
        self.peer = peer
        self.requests = GRPCMessageReader(maxMessageBytes: maxMessageBytes)
        self.responses = GRPCMessageReader(maxMessageBytes: maxMessageBytes)
        self.summary = CallSummary(start: WallClock.now(), method: "", peer: peer)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { context.read() }
    }

    func channelActive(context: ChannelHandlerContext) {
        context.read()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers):
            if phase == .head {
                receivedHead(headers.headers, endStream: headers.endStream)
            } else if headers.endStream {
                // Trailers from a client carry nothing gRPC defines; treat them as the end of the request.
                receivedClientEnd()
            }
        case .data(let data):
            guard case .byteBuffer(let buffer) = data.data else { return }
            receivedRequestData(buffer, endStream: data.endStream)
        case .rstStream:
            clientCancelled()
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushBackend()
        readRequestsIfWanted()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The stream closed under us (client reset, connection loss) before the call finished.
        if phase != .closed { clientCancelled() }
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { backend?.readIfWanted() }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        runtime.logger.debug("client stream error", metadata: ["error": "\(error)", "rpc.method": "\(method.name)"])
        if phase != .closed { clientCancelled() }
    }

    // MARK: Flow control

    /// Asks for more request data when the next step can use it.
    func readRequestsIfWanted() {
        switch phase {
        case .head, .awaitingFirstMessage:
            context.read()
        case .forwarding where !clientEnded && (backend?.isWritable ?? false):
            context.read()
        default:
            break
        }
    }

    var isWritable: Bool { context.channel.isWritable }

    func flushBackend() {
        if backendNeedsFlush {
            backendNeedsFlush = false
            backend?.flush()
        }
    }

    func flushClient() {
        if clientNeedsFlush {
            clientNeedsFlush = false
            context.flush()
        }
    }

    /// The backend stream can take more: resume reading the client.
    func backendBecameWritable() {
        readRequestsIfWanted()
    }
}
