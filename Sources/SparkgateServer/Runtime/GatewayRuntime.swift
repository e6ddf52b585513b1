import Logging
import NIOCore
import SparkgateAuth
import SparkgateCore
import SparkgateObservability
import SparkgateRedis
import Synchronization
import Tracing

/// What every RPC shares: the current configuration generation, the session ledger, the backend pool,
/// the metrics and the audit log.
public final class GatewayRuntime: Sendable {
    private let current: StateBox
    let ledger = LocalLedger()
    let calls = CallRegistry()
    /// What calls hold in the gateway, against `limits.max_buffered_bytes`.
    let buffered = BufferedBytes()
    let connections = ConnectionLimiter()
    let handshakeFailures: HandshakeFailureLog
    let pool: BackendPool
    let backendCalls: BackendCalls
    /// The engines of launch pools (`backends.<name>.launch`).
    public let engines: EngineManager
    let health: BackendHealth
    public let metrics: GatewayMetrics
    public let audit: AuditLog
    public let logger: Logger
    public let group: any EventLoopGroup
    /// Fetches `auth.jwks_urls`; its keys join every generation's configured keys.
    public let keyRefresher: JWKSRefresher
    /// Quotas and ownership shared with other replicas (`state.kind: redis`); fixed for the process's life.
    let shared: SharedState?
    /// What each proxied call may touch.
    let callContext: CallContext

    public convenience init(state: GatewayState, group: any EventLoopGroup, metrics: GatewayMetrics, audit: AuditLog, logger: Logger, tracer: (any Tracer)? = nil) {
        self.init(state: state, group: group, metrics: metrics, audit: audit, logger: logger, connector: TCPBackendConnector(), tracer: tracer)
    }

    init(
        state: GatewayState, group: any EventLoopGroup, metrics: GatewayMetrics, audit: AuditLog, logger: Logger, connector: any BackendConnector,
        tracer: (any Tracer)? = nil
    ) {
        self.current = StateBox(state)
        self.group = group
        self.metrics = metrics
        self.audit = audit
        self.logger = logger
        let directory = EngineDirectory()
        self.pool = BackendPool(group: group, metrics: metrics, connector: ProvingConnector(inner: connector, engines: directory))
        self.backendCalls = BackendCalls(pool: pool, engines: directory, logger: logger)
        self.health = BackendHealth(metrics: metrics, logger: logger)
        self.handshakeFailures = HandshakeFailureLog(logger: logger)
        let current = self.current
        if state.config.state.kind == .redis {
            let settings = state.config.state
            let endpoints = SharedState.endpoints(settings.redis, password: state.redisPassword, sentinelPassword: state.sentinelPassword, tls: state.redisTLS)
            let client = RedisClient(endpoints: endpoints, logger: logger)
            shared = SharedState(client: client, settings: settings, ledger: ledger, group: group, logger: logger) { operation in
                metrics.stateError(kind: "redis", operation: operation)
            }
        } else {
            shared = nil
        }
        self.engines = EngineManager(
            loop: group.next(), directory: directory, ledger: ledger, pool: pool, calls: backendCalls, metrics: metrics, logger: logger,
            shared: shared.map(SharedEngineRecords.init), state: { current.value })
        let refresher = JWKSRefresher(urls: state.config.auth.jwksURLs, interval: state.config.auth.jwksRefreshSeconds, logger: logger) { fetched in
            let state = current.value
            state.authenticator.replaceKeys(state.staticKeys.merging(fetched))
        }
        self.keyRefresher = refresher
        self.callContext = CallContext(
            keyRefresher: refresher, ledger: ledger, shared: shared, placements: PlacementRecorder(ledger: ledger, shared: shared), calls: calls, buffered: buffered, pool: pool, backendCalls: backendCalls, health: health, engines: engines, metrics: metrics, audit: audit,
            logger: logger, tracer: tracer)
        for team in state.config.teams.keys { metrics.registerTeam(team) }
        if let notAfter = state.certificateNotAfter { metrics.certificateExpiry(notAfter) }
    }

    public var state: GatewayState { current.value }

    /// Installs a new configuration generation. Calls already running keep the one they started with.
    public func install(_ state: GatewayState) {
        state.authenticator.replaceKeys(state.staticKeys.merging(keyRefresher.keys))
        keyRefresher.update(urls: state.config.auth.jwksURLs, interval: state.config.auth.jwksRefreshSeconds)
        current.value = state
        for team in state.config.teams.keys { metrics.registerTeam(team) }
        if let notAfter = state.certificateNotAfter { metrics.certificateExpiry(notAfter) }
        var endpoints: Set<BackendEndpoint> = []
        for backend in state.config.backends.values {
            for address in backend.endpoints { endpoints.insert(BackendEndpoint(backend: backend.name, address: address, tls: backend.tls)) }
        }
        pool.retain(only: endpoints, launchPools: Set(state.config.backends.values.filter { $0.launch != nil }.map(\.name)))
    }
}

/// The current generation, shared with the JWKS refresher's callback.
private final class StateBox: Sendable {
    private let mutex: Mutex<GatewayState>

    init(_ state: GatewayState) {
        self.mutex = Mutex(state)
    }

    var value: GatewayState {
        get { mutex.withLock { $0 } }
        set { mutex.withLock { $0 = newValue } }
    }
}
