import NIOCore

/// What one event loop owns: its backend connections, and the connections written to during the current
/// read burst, flushed once at its end. Touched only on its loop.
package final class LoopContext {
    package let eventLoop: any EventLoop
    package var backends: [BackendEndpoint: BackendConnection] = [:]
    private var dirty: [ObjectIdentifier: FrameWriter] = [:]
    /// The time, read once per frame (or timer, or completion) rather than once per call event.
    package private(set) var now = WallClock.now()

    /// Reads the clock: call as a frame, timer or completion starts being handled.
    @discardableResult
    package func tick() -> Double {
        now = WallClock.now()
        return now
    }

    package init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    package func markDirty(_ writer: FrameWriter) {
        dirty[ObjectIdentifier(writer)] = writer
    }

    /// Flushes every connection written to since the last flush. A flush completes writes whose callbacks
    /// may write again (window going back as bytes leave), so it repeats until nothing is left.
    package func flushDirty() {
        var rounds = 0
        while !dirty.isEmpty && rounds < 8 {
            rounds += 1
            let writers = dirty
            dirty.removeAll(keepingCapacity: true)
            for writer in writers.values { writer.flushNow() }
        }
    }
}
