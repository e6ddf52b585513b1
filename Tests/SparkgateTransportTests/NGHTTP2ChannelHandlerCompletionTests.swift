import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import SparkgateTestSupport
import SparkgateTransport
import Testing

/// A write's completion may write and flush again from inside the flush that completed it (a call whose
/// message left sends the next): every completion must still run exactly once.
@Suite("libnghttp2 handler: completions under re-entrant flushes")
struct NGHTTP2ChannelHandlerCompletionTests {
    /// Writes the next message, and flushes, from inside each completion, `more` times.
    final class Chain: WriteListener {
        let handler: NGHTTP2ChannelHandler
        let context: ChannelHandlerContext
        var more: Int
        /// Empty DATA writes nothing when the stream's earlier bytes already left: its completion runs from a
        /// flush that has no output.
        let empty: Bool
        var completed: [Int] = []

        init(handler: NGHTTP2ChannelHandler, context: ChannelHandlerContext, more: Int, empty: Bool = false) {
            self.handler = handler
            self.context = context
            self.more = more
            self.empty = empty
        }

        func written(_ token: Int) {
            completed.append(token)
            guard more > 0 else { return }
            more -= 1
            let message = ByteBuffer(string: empty ? "" : "message \(token + 1)")
            handler.submit(
                .data(.init(data: .byteBuffer(message))), on: HTTP2StreamID(1),
                completion: .listener(self, token: token + 1))
            handler.flush(context: context)
        }
    }

    @Test("each message's completion runs once, in order, while completions write and flush again")
    func reentrantCompletions() throws {
        let (channel, handler, context, client) = try Self.serving()
        let chain = Chain(handler: handler, context: context, more: 5)
        handler.submit(.headers(.init(headers: [":status": "200"])), on: HTTP2StreamID(1), completion: nil)
        handler.submit(
            .data(.init(data: .byteBuffer(ByteBuffer(string: "message 0")))), on: HTTP2StreamID(1),
            completion: .listener(chain, token: 0))
        handler.flush(context: context)
        // Flushes that find nothing new to write still complete what was written before.
        handler.flush(context: context)
        handler.flush(context: context)

        #expect(chain.completed == [0, 1, 2, 3, 4, 5])
        // And the client read every message.
        #expect(try Self.deliver(channel, to: client) > 0)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("completions of writes that produce no bytes run once, in order, from flushes with nothing to send")
    func completionsWithoutOutput() throws {
        let (channel, handler, context, client) = try Self.serving()
        handler.submit(.headers(.init(headers: [":status": "200"])), on: HTTP2StreamID(1), completion: nil)
        handler.submit(
            .data(.init(data: .byteBuffer(ByteBuffer(string: "head start")))), on: HTTP2StreamID(1), completion: nil)
        handler.flush(context: context)
        let sent = try Self.deliver(channel, to: client)
        #expect(sent > 0)

        // Each empty write's completion writes and flushes the next: every flush after the first has no output.
        let chain = Chain(handler: handler, context: context, more: 5, empty: true)
        handler.submit(
            .data(.init(data: .byteBuffer(ByteBuffer()))), on: HTTP2StreamID(1),
            completion: .listener(chain, token: 0))
        handler.flush(context: context)
        handler.flush(context: context)

        #expect(chain.completed == [0, 1, 2, 3, 4, 5])
        #expect(try Self.deliver(channel, to: client) == 0)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    /// A server handler on an embedded channel whose client (its own libnghttp2 session) opened stream 1.
    static func serving() throws -> (EmbeddedChannel, NGHTTP2ChannelHandler, ChannelHandlerContext, NGHTTP2Session) {
        let (channel, handler, context, client) = try HTTP2FrameReceiverTests.connected()
        #expect(client.submitRequest(NGHTTP2SessionTests.request, endStream: true) == 1)
        if let preface = try client.pendingOutput() { try channel.deliverInbound(preface) }
        while let _ = try channel.readInbound(as: HTTP2Frame.self) {}
        return (channel, handler, context, client)
    }

    /// Hands what the handler wrote to the client; returns how many bytes that was.
    static func deliver(_ channel: EmbeddedChannel, to client: NGHTTP2Session) throws -> Int {
        var received = 0
        while let bytes = try channel.readOutbound(as: ByteBuffer.self) {
            received += bytes.readableBytes
            try client.receive(bytes)
        }
        return received
    }
}
