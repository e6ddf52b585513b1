import Logging
import SparkgateObservability
import SparkgateSharedState
import SparkgateTransport

/// What one client connection takes from the runtime: the configuration generation each of its calls starts
/// under (read per call, so a reload applies from the next call), what those calls share, and what the
/// connection itself uses: its loop's backend pool, the ledger its drain asks about running operations, the
/// call registry a listener's drain cancels, and where its pipeline reports handshakes, limits and errors.
package struct ConnectionParts: Sendable {
    package let generation: @Sendable () -> GatewayGeneration
    /// Handed to each `ProxyCall`, and read by nothing else on the connection.
    let callContext: CallContext
    let pool: BackendPool
    let ledger: LocalLedger
    let registry: CallRegistry
    let metrics: GatewayMetrics
    let handshakeFailures: HandshakeFailureLog
    let logger: Logger
}
