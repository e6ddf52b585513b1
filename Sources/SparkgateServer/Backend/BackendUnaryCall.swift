import NIOCore
import NIOHPACK
import NIOHTTP2
import SparkgateCore

/// One unary call Sparkgate itself makes to a backend (Interrupt, ReleaseSession): sends the request and
/// completes with the backend's status.
final class BackendUnaryCall: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    let headers: HPACKHeaders
    let message: [UInt8]
    let promise: EventLoopPromise<(GRPCStatusCode, String)>

    init(headers: HPACKHeaders, message: [UInt8], promise: EventLoopPromise<(GRPCStatusCode, String)>) {
        self.headers = headers
        self.message = message
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
        var framed = context.channel.allocator.buffer(capacity: message.count + 5)
        framed.writeInteger(UInt8(0))
        framed.writeInteger(UInt32(message.count))
        framed.writeBytes(message)
        context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(framed), endStream: true))), promise: nil)
        context.read()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .headers(let h) = unwrapInboundIn(data), h.endStream {
            let code = h.headers.first(name: "grpc-status").flatMap(Int.init).flatMap(GRPCStatusCode.init(rawValue:)) ?? .unknown
            promise.succeed((code, h.headers.first(name: "grpc-message").map(GRPCStatusMessage.decode) ?? ""))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(SparkgateError.unavailable("the backend closed the stream without a status"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}

/// The request messages Sparkgate sends on its own behalf.
enum GatewayRequests {
    static let clientType = "sparkgate"

    /// `InterruptRequest` for one operation (interrupt_type = OPERATION_ID).
    static func interrupt(backendSessionID: String, user: String, operationID: String) -> [UInt8] {
        var m: [UInt8] = []
        WireEncoding.appendString(field: 1, backendSessionID, to: &m)
        m += userContext(user)
        WireEncoding.appendString(field: 3, clientType, to: &m)
        WireEncoding.appendTag(field: 4, wireType: .varint, to: &m)
        WireEncoding.appendVarint(3, to: &m)
        WireEncoding.appendString(field: 6, operationID, to: &m)
        return m
    }

    /// `ReleaseSessionRequest`.
    static func releaseSession(backendSessionID: String, user: String) -> [UInt8] {
        var m: [UInt8] = []
        WireEncoding.appendString(field: 1, backendSessionID, to: &m)
        m += userContext(user)
        WireEncoding.appendString(field: 3, clientType, to: &m)
        return m
    }

    private static func userContext(_ user: String) -> [UInt8] {
        var inner: [UInt8] = []
        WireEncoding.appendString(field: 1, user, to: &inner)
        WireEncoding.appendString(field: 2, user, to: &inner)
        var field: [UInt8] = []
        WireEncoding.appendLengthDelimited(field: 2, inner, to: &field)
        return field
    }
}
