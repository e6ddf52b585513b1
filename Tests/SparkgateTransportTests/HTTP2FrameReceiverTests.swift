import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import SparkgateTestSupport
import SparkgateTransport
import Testing

/// The handler above `NGHTTP2ChannelHandler` hears of frames, stream closures and the connection window by a
/// direct call once it is the receiver, and through the pipeline otherwise: the same things either way.
@Suite("libnghttp2 handler: frames told to its receiver directly")
struct HTTP2FrameReceiverTests {
    final class Receiver: HTTP2FrameReceiver {
        var heard: [String] = []

        func received(_ frame: HTTP2Frame) {
            switch frame.payload {
            case .headers(let headers):
                heard.append(
                    "headers \(Int(frame.streamID)) \(headers.headers.first(name: ":path") ?? "") \(headers.endStream)")
            case .data(let data):
                guard case .byteBuffer(let buffer) = data.data else { return }
                heard.append("data \(Int(frame.streamID)) \(String(buffer: buffer)) \(data.endStream)")
            default:
                heard.append("other \(Int(frame.streamID))")
            }
        }

        func streamClosed(_ event: StreamClosedEvent) {
            heard.append("closed \(Int(event.streamID)) \(event.reason.map { "\($0)" } ?? "ok")")
        }

        func connectionWindowReported(_ inbound: Int) {
            heard.append("window")
        }
    }

    @Test("a request's frames and its stream's end reach the receiver, and nothing goes up the pipeline")
    func direct() throws {
        let (channel, handler, context, client) = try Self.connected()
        let receiver = Receiver()
        handler.receiver = receiver
        try Self.sendRequest(from: client, body: "hello", to: channel)
        #expect(try channel.readInbound(as: HTTP2Frame.self) == nil)
        #expect(
            receiver.heard == [
                "headers 1 /spark.connect.SparkConnectService/Config false", "data 1 hello true", "window",
            ])

        receiver.heard = []
        handler.submit(.headers(.init(headers: [":status": "200"])), on: HTTP2StreamID(1), completion: nil)
        handler.submit(
            .headers(.init(headers: ["grpc-status": "0"], endStream: true)), on: HTTP2StreamID(1), completion: nil)
        handler.flush(context: context)
        #expect(receiver.heard == ["closed 1 ok"])
        #expect(try channel.readInbound(as: HTTP2Frame.self) == nil)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("without a receiver the same frames and events go up the pipeline")
    func throughThePipeline() throws {
        let (channel, handler, context, client) = try Self.connected()
        let events = EventRecorder()
        try channel.pipeline.syncOperations.addHandler(events)
        try Self.sendRequest(from: client, body: "hello", to: channel)
        var frames: [String] = []
        while let frame = try channel.readInbound(as: HTTP2Frame.self) {
            if case .data(let data) = frame.payload, case .byteBuffer(let buffer) = data.data {
                frames.append("data \(String(buffer: buffer)) \(data.endStream)")
            } else if case .headers(let headers) = frame.payload {
                frames.append("headers \(headers.endStream)")
            }
        }
        #expect(frames == ["headers false", "data hello true"])
        handler.submit(.headers(.init(headers: [":status": "200"])), on: HTTP2StreamID(1), completion: nil)
        handler.submit(
            .headers(.init(headers: ["grpc-status": "0"], endStream: true)), on: HTTP2StreamID(1), completion: nil)
        handler.flush(context: context)
        #expect(events.closed == [HTTP2StreamID(1)])
        #expect(events.windows > 0)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    final class EventRecorder: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame
        typealias InboundOut = HTTP2Frame
        var closed: [HTTP2StreamID] = []
        var windows = 0

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.fireChannelRead(data)
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? StreamClosedEvent { closed.append(event.streamID) }
            if event is NIOHTTP2WindowUpdatedEvent { windows += 1 }
        }
    }

    /// A server handler on an embedded channel, with the client session that will talk to it.
    static func connected() throws -> (EmbeddedChannel, NGHTTP2ChannelHandler, ChannelHandlerContext, NGHTTP2Session) {
        let channel = EmbeddedChannel()
        let handler = NGHTTP2ChannelHandler(role: .server, settings: NGHTTP2SessionTests.settings)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let context = try channel.pipeline.syncOperations.context(handler: handler)
        let client = try NGHTTP2Session(
            role: .client, settings: NGHTTP2SessionTests.settings, allocator: ByteBufferAllocator())
        return (channel, handler, context, client)
    }

    static func sendRequest(from client: NGHTTP2Session, body: String, to channel: EmbeddedChannel) throws {
        #expect(client.submitRequest(NGHTTP2SessionTests.request, endStream: false) == 1)
        client.submitData(ByteBuffer(string: body), on: 1, endStream: true, completion: nil)
        while let bytes = try client.pendingOutput() { try channel.deliverInbound(bytes) }
    }
}
