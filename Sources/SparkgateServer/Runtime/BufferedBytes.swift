import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport
import Synchronization

/// The bytes all calls together hold in the gateway: received from one side and not yet written out to the
/// other. Each call adds and removes its own share; `limits.max_buffered_bytes` bounds the total.
final class BufferedBytes: Sendable {
    private let total = Atomic<Int>(0)

    func add(_ bytes: Int) {
        guard bytes != 0 else { return }
        total.wrappingAdd(bytes, ordering: .relaxed)
    }

    var value: Int { total.load(ordering: .relaxed) }
}
