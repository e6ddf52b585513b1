import NIOCore
import SparkgateCore
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
    }

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

    /// Ends every call of `operation` with `error`.
    func terminate(operation: OperationKey, with error: SparkgateError) {
        let matching = table.withLock { $0.calls.values.filter { $0.operation == operation } }
        for call in matching { call.terminate(error) }
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
