import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2
import SparkgateCore
import SparkgateEngines
import SparkgateFraming
import SparkgateServer
import SparkgateSharedState
import SparkgateTransport

/// An HTTP/2 Spark Connect server played by a script: it records what the gateway sends on each stream and
/// answers as the script says, once the request ends (or at once, for streaming scripts).
public final class ScriptedBackend: ChannelInboundHandler {
    public typealias InboundIn = HTTP2Frame
    public typealias OutboundOut = HTTP2Frame

    /// What the backend does for a request: given its headers and its request messages, the frames to send.
    public typealias Script = @Sendable (_ request: Request) -> [HTTP2Frame.FramePayload]

    public struct Request {
        public var headers: HPACKHeaders
        public var messages: [[UInt8]]
        public var path: String { headers.first(name: ":path") ?? "" }
    }

    public let script: Script
    private var requests: [HTTP2StreamID: (headers: HPACKHeaders, data: ByteBuffer)] = [:]
    public private(set) var received: [HTTP2StreamID: Request] = [:]
    public private(set) var resets: [HTTP2StreamID: HTTP2ErrorCode] = [:]
    public var context: ChannelHandlerContext?

    public init(script: @escaping Script) {
        self.script = script
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let id = frame.streamID
        switch frame.payload {
        case .headers(let h):
            requests[id] = (h.headers, ByteBuffer())
            if h.endStream { answer(id, context: context) }
        case .data(let d):
            if case .byteBuffer(var b) = d.data { requests[id]?.data.writeBuffer(&b) }
            // A reading server gives the window back as it takes the bytes.
            let bytes = d.data.readableBytes
            if bytes > 0 {
                context.write(
                    wrapOutboundOut(
                        HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: bytes))),
                    promise: nil)
                if !d.endStream {
                    context.write(
                        wrapOutboundOut(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: bytes))),
                        promise: nil)
                }
                context.flush()
            }
            if d.endStream { answer(id, context: context) }
        case .rstStream(let code):
            resets[id] = code
        default:
            break
        }
    }

    private func answer(_ id: HTTP2StreamID, context: ChannelHandlerContext) {
        guard let (headers, data) = requests[id] else { return }
        let request = Request(headers: headers, messages: Self.messages(data))
        received[id] = request
        for payload in script(request) {
            context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: payload)), promise: nil)
        }
        context.flush()
    }

    /// Sends frames on a stream outside the script (a GOAWAY, a reset, a late message).
    public func send(_ payload: HTTP2Frame.FramePayload, on id: HTTP2StreamID) {
        context?.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: id, payload: payload)), promise: nil)
    }

    public static func messages(_ data: ByteBuffer) -> [[UInt8]] {
        var data = data
        var out: [[UInt8]] = []
        while data.readableBytes >= 5, let length = data.getInteger(at: data.readerIndex + 1, as: UInt32.self),
            data.readableBytes >= 5 + Int(length)
        {
            data.moveReaderIndex(forwardBy: 5)
            out.append(data.readBytes(length: Int(length))!)
        }
        return out
    }

    // MARK: Building responses

    public static func head() -> HTTP2Frame.FramePayload {
        var h = HPACKHeaders()
        h.add(name: ":status", value: "200")
        h.add(name: "content-type", value: "application/grpc")
        return .headers(.init(headers: h))
    }

    public static func message(_ payload: [UInt8]) -> HTTP2Frame.FramePayload {
        .data(.init(data: .byteBuffer(GRPCMessage.frame(payload: payload).framed)))
    }

    public static func trailers(_ code: GRPCStatusCode = .ok, _ message: String? = nil) -> HTTP2Frame.FramePayload {
        var h = HPACKHeaders()
        h.add(name: "grpc-status", value: String(code.rawValue))
        if let message { h.add(name: "grpc-message", value: GRPCStatusMessage.encode(message)) }
        return .headers(.init(headers: h, endStream: true))
    }

    /// An error as Spark sends it: trailers-only, its class in `grpc-status-details-bin` (a `google.rpc.Status`
    /// whose ErrorInfo detail carries `errorClass`), the message naming it too.
    public static func sparkError(_ code: GRPCStatusCode, errorClass: String) -> HTTP2Frame.FramePayload {
        var entry: [UInt8] = []
        WireEncoding.appendString(field: 1, "errorClass", to: &entry)
        WireEncoding.appendString(field: 2, errorClass, to: &entry)
        var info: [UInt8] = []
        WireEncoding.appendString(field: 1, errorClass, to: &info)
        WireEncoding.appendString(field: 2, "org.apache.spark", to: &info)
        WireEncoding.appendLengthDelimited(field: 3, entry, to: &info)
        var any: [UInt8] = []
        WireEncoding.appendString(field: 1, "type.googleapis.com/google.rpc.ErrorInfo", to: &any)
        WireEncoding.appendLengthDelimited(field: 2, info, to: &any)
        var status: [UInt8] = []
        WireEncoding.appendTag(field: 1, wireType: .varint, to: &status)
        WireEncoding.appendVarint(UInt64(code.rawValue), to: &status)
        WireEncoding.appendString(field: 2, "[\(errorClass)]", to: &status)
        WireEncoding.appendLengthDelimited(field: 3, any, to: &status)
        var h = HPACKHeaders()
        h.add(name: ":status", value: "200")
        h.add(name: "content-type", value: "application/grpc")
        h.add(name: "grpc-status", value: String(code.rawValue))
        h.add(name: "grpc-message", value: GRPCStatusMessage.encode("[\(errorClass)]"))
        h.add(name: "grpc-status-details-bin", value: Data(status).base64EncodedString())
        return .headers(.init(headers: h, endStream: true))
    }
}

/// Spark Connect messages, built at the wire level for the in-memory tests.
public enum SparkMessages {
    public static let sessionID = "00000000-0000-4000-8000-000000000001"
    public static let operationID = "00000000-0000-4000-8000-0000000000aa"

    /// A request carrying `session_id` and a `user_context` naming `claimedUser`, plus `padding` bytes of an
    /// unknown field (50), which every engine skips, and a `client_type` (field 4 of Config and ExecutePlan).
    public static func request(
        session: String? = sessionID, claimedUser: String = "mallory", padding: Int = 0, operation: String? = nil,
        clientType: String? = nil
    ) -> [UInt8] {
        var m: [UInt8] = []
        if let session { WireEncoding.appendString(field: 1, session, to: &m) }
        m += UserContextField.encode(user: claimedUser)
        if let clientType { WireEncoding.appendString(field: 4, clientType, to: &m) }
        if padding > 0 {
            WireEncoding.appendLengthDelimited(field: 50, [UInt8](repeating: 0x61, count: padding), to: &m)
        }
        if let operation { WireEncoding.appendString(field: 6, operation, to: &m) }
        return m
    }

    /// A response naming `session` in field 1, with an Arrow batch of `arrowBytes` bytes (field 2) when asked.
    public static func response(
        session: String, arrowBytes: Int = 0, rows: UInt64 = 0, resultComplete: Bool = false
    ) -> [UInt8] {
        var m: [UInt8] = []
        WireEncoding.appendString(field: 1, session, to: &m)
        if arrowBytes > 0 {
            var batch: [UInt8] = []
            WireEncoding.appendTag(field: 1, wireType: .varint, to: &batch)
            WireEncoding.appendVarint(rows, to: &batch)
            WireEncoding.appendLengthDelimited(field: 2, [UInt8](repeating: 0x42, count: arrowBytes), to: &batch)
            WireEncoding.appendLengthDelimited(field: 2, batch, to: &m)
        }
        if resultComplete { WireEncoding.appendLengthDelimited(field: 14, [], to: &m) }
        return m
    }

    /// Field 1 (session_id) and the user_context user id of a request, as the backend saw them.
    public static func routing(_ message: [UInt8]) -> (session: String?, user: String?) {
        message.withUnsafeBytes { raw in
            guard let e = try? RequestEnvelope.read(raw, method: .config) else { return (nil, nil) }
            return (e.sessionID, e.clientUserID)
        }
    }
}
