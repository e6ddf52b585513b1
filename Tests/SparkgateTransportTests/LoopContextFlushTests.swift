import NIOCore
import NIOEmbedded
import SparkgateTransport
import Testing

/// Work waiting for a flush runs after it, however many rounds it takes, without holding the loop.
@Suite("Loop context: work after the flush")
struct LoopContextFlushTests {
    /// Work that asks to run again after the next flush, `times` times.
    final class Echo: AfterFlush {
        let loop: LoopContext
        var left: Int
        var ran = 0

        init(loop: LoopContext, times: Int) {
            self.loop = loop
            self.left = times
        }

        func runAfterFlush() {
            ran += 1
            left -= 1
            if left > 0 { loop.afterFlush(self) }
        }
    }

    @Test("work that keeps asking runs a bounded number of rounds per flush; the rest runs in a task on the loop")
    func continuesOnTheLoop() {
        let eventLoop = EmbeddedEventLoop()
        let loop = LoopContext(eventLoop: eventLoop)
        let echo = Echo(loop: loop, times: LoopContext.maxRounds * 2 + 3)
        loop.afterFlush(echo)
        loop.flushDirty()
        // One flush ran its rounds and stopped, so a peer's bytes are not held behind it...
        #expect(echo.ran == LoopContext.maxRounds)
        // ...and what was left runs without waiting for another read on the connection.
        eventLoop.run()
        #expect(echo.ran == LoopContext.maxRounds * 2 + 3)
        #expect(echo.left == 0)
    }
}
