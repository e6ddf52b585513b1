import NIOCore
import NIOEmbedded
import SparkgateCore
import SparkgateTransport
import Testing

/// When a connection's writes leave: requests of one read burst go to the backend in a few flushes, not one
/// each (a flush is a syscall), the first at once so the backend starts while the rest are read.
@Suite("Frame writer: flushes per read burst")
struct FrameWriterFlushTests {
    /// Counts the flushes that reach the channel.
    final class FlushCounter: ChannelOutboundHandler {
        typealias OutboundIn = Any
        var flushes = 0

        func flush(context: ChannelHandlerContext) {
            flushes += 1
            context.flush()
        }
    }

    final class Top: ChannelInboundHandler {
        typealias InboundIn = Any
    }

    @Test("the first whole request of a burst and every fourth flush at once; the burst's end flushes the rest")
    func requestsFlushInBatches() throws {
        let channel = EmbeddedChannel()
        let counter = FlushCounter()
        try channel.pipeline.syncOperations.addHandler(counter)
        let top = Top()
        try channel.pipeline.syncOperations.addHandler(top)
        let loop = LoopContext(eventLoop: channel.eventLoop)
        let writer = FrameWriter(loop: loop, credit: ConnectionCredit(target: 65_535))
        writer.attach(try channel.pipeline.syncOperations.context(handler: top))

        for _ in 0..<10 { writer.requestWritten() }
        // Requests 1, 4 and 8 went at once.
        #expect(counter.flushes == 3)
        writer.flushNow()  // the burst's end
        #expect(counter.flushes == 4)
        // A new burst starts over: its first request goes at once.
        writer.requestWritten()
        #expect(counter.flushes == 5)
        writer.requestWritten()
        #expect(counter.flushes == 5)
        _ = try channel.finish()
    }
}
