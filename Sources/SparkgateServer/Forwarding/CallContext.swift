import SparkgateAuth
import SparkgateCore
import SparkgateEngines
import SparkgateObservability
import SparkgateSharedState
import SparkgateTransport
import Tracing

/// What a proxied call may touch beyond its own streams: key refreshes, the shared ledger and call registry,
/// the backend pool, Sparkgate's own backend calls, metrics, the audit log. One per runtime, shared by its
/// calls (a class: each call holds one reference, not thirteen).
final class CallContext: Sendable {
    let keyRefresher: JWKSRefresher
    let ledger: LocalLedger
    /// Admits calls: the local ledger, or the shared state when replicas share one.
    let admissions: any Ledger
    let placements: PlacementRecorder
    let calls: CallRegistry
    let buffered: BufferedBytes
    let pool: BackendPool
    let backendCalls: BackendCalls
    let health: BackendHealth
    let engines: EngineManager
    let metrics: GatewayMetrics
    let audit: AuditLog
    /// Spans go here when `tracing` is on.
    let tracer: (any Tracer)?

    init(
        keyRefresher: JWKSRefresher, ledger: LocalLedger, admissions: any Ledger, placements: PlacementRecorder,
        calls: CallRegistry, buffered: BufferedBytes,
        pool: BackendPool, backendCalls: BackendCalls, health: BackendHealth, engines: EngineManager,
        metrics: GatewayMetrics, audit: AuditLog,
        tracer: (any Tracer)?
    ) {
        self.keyRefresher = keyRefresher
        self.ledger = ledger
        self.admissions = admissions
        self.placements = placements
        self.calls = calls
        self.buffered = buffered
        self.pool = pool
        self.backendCalls = backendCalls
        self.health = health
        self.engines = engines
        self.metrics = metrics
        self.audit = audit
        self.tracer = tracer
    }
}
