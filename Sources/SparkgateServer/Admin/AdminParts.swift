import NIOCore
import SparkgateEngines
import SparkgateObservability
import SparkgateSharedState
import SparkgateTransport

/// What the admin API reads and acts on: the current generation (tokens, backends), the session ledger and
/// the replicas' shared state, the calls it may end, the engines it lists and stops, the backends' health.
struct AdminParts: Sendable {
    let generation: @Sendable () -> GatewayGeneration
    let ledger: LocalLedger
    let shared: SharedState?
    let calls: CallRegistry
    let backendCalls: BackendCalls
    let engines: EngineManager
    let health: BackendHealth
    let metrics: GatewayMetrics
    let group: any EventLoopGroup

    var state: GatewayGeneration { generation() }
}
