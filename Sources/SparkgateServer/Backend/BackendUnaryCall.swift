import NIOCore
import NIOHPACK
import NIOHTTP2
import SparkgateCore

/// One unary call Sparkgate itself makes to a backend (Interrupt, ReleaseSession): sends the request and
/// completes with the backend's status.
final class BackendUnaryCall: BackendStreamOwner {
    let promise: EventLoopPromise<(GRPCStatusCode, String)>

    init(promise: EventLoopPromise<(GRPCStatusCode, String)>) {
        self.promise = promise
    }

    static func framed(_ message: [UInt8]) -> ByteBuffer {
        var framed = ByteBufferAllocator().buffer(capacity: message.count + 5)
        framed.writeInteger(UInt8(0))
        framed.writeInteger(UInt32(message.count))
        framed.writeBytes(message)
        return framed
    }

    func backendHeaders(_ headers: HPACKHeaders, endStream: Bool) {
        guard endStream else { return }
        let code = headers.first(name: "grpc-status").flatMap(Int.init).flatMap(GRPCStatusCode.init(rawValue:)) ?? .unknown
        promise.succeed((code, headers.first(name: "grpc-message").map(GRPCStatusMessage.decode) ?? ""))
    }

    func backendData(_ data: ByteBuffer, endStream: Bool, flowControlled: Int) {}

    func backendStreamClosed(reset: HTTP2ErrorCode?) {
        promise.fail(SparkgateError.unavailable("the backend closed the stream without a status"))
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
