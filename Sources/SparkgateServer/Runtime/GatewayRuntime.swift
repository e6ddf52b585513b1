import Logging
import NIOCore
import SparkgateAuth
import SparkgateCore
import SparkgateEngines
import SparkgateObservability
import SparkgateRedis
import SparkgateSharedState
import SparkgateTransport
import Synchronization
import Tracing

/// The gateway's parts, built once: the current configuration generation, what every call shares
/// (`CallContext`: the ledger, the backend pool, the engines, metrics, the audit log), what connections
/// share (limits, handshake logs), and the event loops. The services built from it each take only the parts
/// they use.
public final class GatewayRuntime: Sendable {
    private let current: StateBox
    /// What each proxied call may touch; the runtime keeps each part once, here.
    let callContext: CallContext
    let connections = ConnectionLimiter()
    let handshakeFailures: HandshakeFailureLog
    public let group: any EventLoopGroup

    var ledger: LocalLedger { callContext.ledger }
    var calls: CallRegistry { callContext.calls }
    /// What calls hold in the gateway, against `limits.max_buffered_bytes`.
    var buffered: BufferedBytes { callContext.buffered }
    var pool: BackendPool { callContext.pool }
    var backendCalls: BackendCalls { callContext.backendCalls }
    /// The engines of launch pools (`backends.<name>.launch`).
    public var engines: EngineManager { callContext.engines }
    var health: BackendHealth { callContext.health }
    public var metrics: GatewayMetrics { callContext.metrics }
    public var audit: AuditLog { callContext.audit }
    public let logger: Logger
    /// Fetches `auth.jwks_urls`; its keys join every generation's configured keys.
    public var keyRefresher: JWKSRefresher { callContext.keyRefresher }
    /// Quotas, ownership, placement and launch pools shared with other replicas (`state.kind: redis`); fixed
    /// for the process's life.
    let shared: SharedState?

    public convenience init(
        state: GatewayGeneration, group: any EventLoopGroup, metrics: GatewayMetrics, audit: AuditLog, logger: Logger,
        tracer: (any Tracer)? = nil
    ) {
        self.init(
            state: state, group: group, metrics: metrics, audit: audit, logger: logger,
            connector: TCPBackendConnector(), tracer: tracer)
    }

    package init(
        state: GatewayGeneration, group: any EventLoopGroup, metrics: GatewayMetrics, audit: AuditLog, logger: Logger,
        connector: any BackendConnector,
        tracer: (any Tracer)? = nil
    ) {
        let current = StateBox(state)
        self.current = current
        self.group = group
        self.logger = logger
        self.handshakeFailures = HandshakeFailureLog(logger: logger)
        let ledger = LocalLedger()
        let directory = EngineDirectory()
        let pool = BackendPool(
            group: group, metrics: metrics, connector: ProvingConnector(inner: connector, engines: directory))
        let backendCalls = BackendCalls(pool: pool, engines: directory, logger: logger)
        var shared: SharedState?
        if state.config.state.kind == .redis {
            let settings = state.config.state
            let endpoints = SharedState.endpoints(
                settings.redis, password: state.redisPassword, sentinelPassword: state.sentinelPassword,
                tls: state.redisTLS)
            shared = SharedState(
                client: RedisClient(endpoints: endpoints, logger: logger), settings: settings, ledger: ledger,
                group: group, logger: logger,
                seal: state.recordSeal, countRejected: { metrics.recordRejected($0) }
            ) { operation in
                metrics.stateError(kind: "redis", operation: operation)
            }
        }
        let engines = EngineManager(
            loop: group.next(), directory: directory, ledger: ledger, pool: pool, calls: backendCalls, metrics: metrics,
            logger: logger,
            shared: shared.map(SharedEngineRecords.init), seal: state.recordSeal, config: { current.value.config })
        let refresher = JWKSRefresher(
            urls: state.config.auth.jwksURLs, interval: state.config.auth.jwksRefreshSeconds, logger: logger
        ) { fetched in
            let state = current.value
            state.authenticator.replaceKeys(state.staticKeys.merging(fetched))
        }
        self.shared = shared
        self.callContext = CallContext(
            keyRefresher: refresher, ledger: ledger, admissions: shared ?? ledger,
            placements: PlacementRecorder(ledger: ledger, shared: shared), calls: CallRegistry(),
            buffered: BufferedBytes(), pool: pool, backendCalls: backendCalls,
            health: BackendHealth(metrics: metrics, logger: logger), engines: engines,
            metrics: metrics, audit: audit, tracer: tracer)
        for team in state.config.teams.keys { metrics.registerTeam(team) }
        if let notAfter = state.certificateNotAfter { metrics.certificateExpiry(notAfter) }
    }

    public var state: GatewayGeneration { current.value }

    /// What a client connection takes (the pipeline and its handler never hold the runtime).
    package var connectionParts: ConnectionParts {
        let current = self.current
        return ConnectionParts(
            generation: { current.value }, callContext: callContext, pool: pool, ledger: ledger, registry: calls,
            metrics: metrics, handshakeFailures: handshakeFailures, logger: logger)
    }

    /// What the admin API takes.
    var adminParts: AdminParts {
        let current = self.current
        return AdminParts(
            generation: { current.value }, ledger: ledger, shared: shared, calls: calls, backendCalls: backendCalls,
            engines: engines, health: health, metrics: metrics, group: group)
    }

    /// Makes this process the reaper of what its engines orphan (`ChildReaper`); only `serve` calls it.
    @discardableResult
    public static func adoptOrphans() -> Bool { ChildReaper.enable() }

    /// Installs a new configuration generation. Calls already running keep the one they started with.
    public func install(_ state: GatewayGeneration) {
        state.authenticator.replaceKeys(state.staticKeys.merging(keyRefresher.keys))
        keyRefresher.update(urls: state.config.auth.jwksURLs, interval: state.config.auth.jwksRefreshSeconds)
        current.value = state
        for team in state.config.teams.keys { metrics.registerTeam(team) }
        if let notAfter = state.certificateNotAfter { metrics.certificateExpiry(notAfter) }
        var endpoints: Set<BackendEndpoint> = []
        for backend in state.config.backends.values {
            for address in backend.endpoints {
                endpoints.insert(BackendEndpoint(backend: backend.name, address: address, tls: backend.tls))
            }
        }
        pool.retain(
            only: endpoints, launchPools: Set(state.config.backends.values.filter { $0.launch != nil }.map(\.name)))
    }
}

/// The current generation, shared with the JWKS refresher's callback.
private final class StateBox: Sendable {
    private let mutex: Mutex<GatewayGeneration>

    init(_ state: GatewayGeneration) {
        self.mutex = Mutex(state)
    }

    var value: GatewayGeneration {
        get { mutex.withLock { $0 } }
        set { mutex.withLock { $0 = newValue } }
    }
}
