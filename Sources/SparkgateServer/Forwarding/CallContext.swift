import Logging
import SparkgateAuth
import SparkgateCore
import SparkgateObservability
import Tracing
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport

/// What a proxied call may touch beyond its own streams: key refreshes, the shared ledger and call registry,
/// the backend pool, Sparkgate's own backend calls, metrics, the audit log.
struct CallContext: Sendable {
    let keyRefresher: JWKSRefresher
    let ledger: LocalLedger
    let shared: SharedState?
    let placements: PlacementRecorder
    let calls: CallRegistry
    let buffered: BufferedBytes
    let pool: BackendPool
    let backendCalls: BackendCalls
    let health: BackendHealth
    let engines: EngineManager
    let metrics: GatewayMetrics
    let audit: AuditLog
    let logger: Logger
    /// Spans go here when `tracing` is on.
    let tracer: (any Tracer)?
}
