import NIOCore
import SparkgateCore
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport
import Synchronization

/// The streaming calls in flight, so Sparkgate can end them from outside their event loop: an operation
/// past its time limit, a session an operator killed, a shutdown past its grace period.
final class CallRegistry: Sendable {
    struct Handle: Sendable {
        var session: SessionKey
        var operation: OperationKey?
        var terminate: @Sendable (SparkgateError) -> Void
    }

    private struct Table: Sendable {
        var nextID: UInt64 = 0
        var calls: [UInt64: Handle] = [:]
        /// Operations Sparkgate ended (quota, time limit, operator), with why, for their next ReattachExecute.
        var ended: [OperationKey: (error: SparkgateError, at: Double)] = [:]
    }

    /// How long an ended operation's reason is remembered (a client reattaches within seconds).
    static let endedMemorySeconds = 600.0
    static let endedMemoryCount = 10_000

    private let table = Mutex(Table())

    func register(_ handle: Handle) -> UInt64 {
        table.withLock { t in
            t.nextID += 1
            t.calls[t.nextID] = handle
            return t.nextID
        }
    }

    func unregister(_ id: UInt64) {
        _ = table.withLock { $0.calls.removeValue(forKey: id) }
    }

    /// Ends every call of `operation` with `error`, and remembers why for the client's next ReattachExecute.
    func terminate(operation: OperationKey, with error: SparkgateError, now: Double) {
        let matching = table.withLock { t -> [Handle] in
            if t.ended.count >= Self.endedMemoryCount {
                t.ended = t.ended.filter { now - $0.value.at < Self.endedMemorySeconds }
                if t.ended.count >= Self.endedMemoryCount { t.ended.removeAll() }
            }
            t.ended[operation] = (error, now)
            return t.calls.values.filter { $0.operation == operation }
        }
        for call in matching { call.terminate(error) }
    }

    /// Why Sparkgate ended `operation`, if it did recently.
    func endedReason(_ operation: OperationKey, now: Double) -> SparkgateError? {
        table.withLock { t in
            guard let entry = t.ended[operation], now - entry.at < Self.endedMemorySeconds else { return nil }
            return entry.error
        }
    }

    /// Ends every call of `session` with `error`.
    func terminate(session: SessionKey, with error: SparkgateError) {
        let matching = table.withLock { $0.calls.values.filter { $0.session == session } }
        for call in matching { call.terminate(error) }
    }

    func terminateAll(with error: SparkgateError) {
        let all = table.withLock { Array($0.calls.values) }
        for call in all { call.terminate(error) }
    }

    var count: Int { table.withLock { $0.calls.count } }
}
