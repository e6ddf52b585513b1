import NIOCore

/// What one event loop owns: its backend connections, and the connections written to during the current
/// read burst, flushed once at its end. Touched only on its loop.
final class LoopContext {
    let eventLoop: any EventLoop
    var backends: [BackendEndpoint: BackendConnection] = [:]
    private var dirty: [ObjectIdentifier: any FrameSink] = [:]

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func markDirty(_ sink: any FrameSink) {
        dirty[ObjectIdentifier(sink)] = sink
    }

    /// Flushes every connection written to since the last flush.
    func flushDirty() {
        guard !dirty.isEmpty else { return }
        let sinks = dirty
        dirty.removeAll(keepingCapacity: true)
        for sink in sinks.values { sink.flushNow() }
    }
}
