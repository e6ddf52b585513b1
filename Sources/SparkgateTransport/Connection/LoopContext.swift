import NIOCore

/// What one event loop owns: its backend connections, and the connections written to during the current
/// read burst, flushed once at its end. Touched only on its loop.
package final class LoopContext {
    package let eventLoop: any EventLoop
    package var backends: [BackendEndpoint: BackendConnection] = [:]
    /// The deadlines (`grpc-timeout`) of the calls on this loop.
    package private(set) lazy var deadlines = DeadlineQueue(eventLoop: eventLoop)
    private var dirty: [ObjectIdentifier: FrameWriter] = [:]
    /// `dirty`'s storage between flushes, swapped rather than copied.
    private var flushing: [ObjectIdentifier: FrameWriter] = [:]
    /// Work that waits until what is written now has been flushed (see `afterFlush`).
    private var deferred: [any AfterFlush] = []
    private var running: [any AfterFlush] = []
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

    /// The writer flushed on its own: nothing it wrote waits for the loop's flush any more.
    package func markClean(_ writer: FrameWriter) {
        dirty.removeValue(forKey: ObjectIdentifier(writer))
    }

    /// Whether something written since the last flush still waits for it.
    package var hasUnflushedWrites: Bool { !dirty.isEmpty }

    /// Runs `work` right after the next flush, on this loop: bookkeeping that need not delay the bytes a peer
    /// waits for (a call's metrics and audit line after its last frame).
    package func afterFlush(_ work: any AfterFlush) {
        deferred.append(work)
    }

    /// Flushes every connection written to since the last flush, then runs the work waiting for it. A flush
    /// completes writes whose callbacks may write again (window going back as bytes leave), so it repeats
    /// until nothing is left.
    /// Rounds are bounded so that work that keeps writing cannot hold the loop; what is left then runs in a
    /// task of its own on the loop, not at some later read that may never come on an idle connection.
    package func flushDirty() {
        var rounds = 0
        while (!dirty.isEmpty || !deferred.isEmpty) && rounds < Self.maxRounds {
            rounds += 1
            swap(&dirty, &flushing)
            for writer in flushing.values { writer.flushNow() }
            flushing.removeAll(keepingCapacity: true)
            swap(&deferred, &running)
            for work in running { work.runAfterFlush() }
            running.removeAll(keepingCapacity: true)
        }
        if (!dirty.isEmpty || !deferred.isEmpty) && !continuationScheduled {
            continuationScheduled = true
            eventLoop.assumeIsolated().execute { [self] in
                continuationScheduled = false
                flushDirty()
            }
        }
    }

    package static let maxRounds = 8
    private var continuationScheduled = false
}

/// Work a loop runs after its next flush (`LoopContext.afterFlush`).
package protocol AfterFlush: AnyObject {
    func runAfterFlush()
}
