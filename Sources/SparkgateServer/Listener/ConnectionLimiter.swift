import SparkgateCore
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport
import Synchronization

/// Counts client connections, in all and per source address, so the listener can refuse one past
/// `limits.max_connections` or `limits.max_connections_per_address` at once, before TLS.
final class ConnectionLimiter: Sendable {
    private struct Counts {
        var total = 0
        var perAddress: [String: Int] = [:]
    }

    private let counts = Mutex(Counts())

    /// Takes a slot for a connection from `address`, or says which limit is full.
    func admit(_ address: String, limits: ConnectionLimits) -> LimitEvent? {
        counts.withLock { c in
            if c.total >= limits.maxConnections { return .maxConnections }
            if c.perAddress[address, default: 0] >= limits.maxConnectionsPerAddress { return .maxConnectionsPerAddress }
            c.total += 1
            c.perAddress[address, default: 0] += 1
            return nil
        }
    }

    func release(_ address: String) {
        counts.withLock { c in
            c.total -= 1
            let n = c.perAddress[address, default: 1] - 1
            c.perAddress[address] = n > 0 ? n : nil
        }
    }

    var total: Int { counts.withLock { $0.total } }
}
