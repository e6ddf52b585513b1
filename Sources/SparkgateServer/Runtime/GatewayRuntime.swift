import Logging
import NIOCore
import SparkgateAuth
import SparkgateCore
import SparkgateObservability
import Synchronization

/// What every RPC shares: the current configuration generation, the session ledger, the backend pool,
/// the metrics and the audit log.
public final class GatewayRuntime: Sendable {
    private let current: StateBox
    let ledger = Mutex(SessionLedger())
    let calls = CallRegistry()
    let pool: BackendPool
    public let metrics: GatewayMetrics
    public let audit: AuditLog
    public let logger: Logger
    public let group: any EventLoopGroup
    /// Fetches `auth.jwks_urls`; its keys join every generation's configured keys.
    public let keyRefresher: JWKSRefresher

    public init(state: GatewayState, group: any EventLoopGroup, metrics: GatewayMetrics, audit: AuditLog, logger: Logger) {
        self.current = StateBox(state)
        self.group = group
        self.metrics = metrics
        self.audit = audit
        self.logger = logger
        self.pool = BackendPool(group: group, metrics: metrics)
        let current = self.current
        self.keyRefresher = JWKSRefresher(urls: state.config.auth.jwksURLs, interval: state.config.auth.jwksRefreshSeconds, logger: logger) { fetched in
            let state = current.value
            state.authenticator.replaceKeys(state.staticKeys.merging(fetched))
        }
        for team in state.config.teams.keys { metrics.registerTeam(team) }
    }

    public var state: GatewayState { current.value }

    /// Installs a new configuration generation. Calls already running keep the one they started with.
    public func install(_ state: GatewayState) {
        state.authenticator.replaceKeys(state.staticKeys.merging(keyRefresher.keys))
        keyRefresher.update(urls: state.config.auth.jwksURLs, interval: state.config.auth.jwksRefreshSeconds)
        current.value = state
        for team in state.config.teams.keys { metrics.registerTeam(team) }
        var endpoints: Set<BackendEndpoint> = []
        for backend in state.config.backends.values {
            for address in backend.endpoints { endpoints.insert(BackendEndpoint(backend: backend.name, address: address, tls: backend.tls)) }
        }
        pool.retain(only: endpoints)
    }

    /// The quotas of a team under the current configuration.
    func quotas(team: String) -> QuotaSettings {
        state.config.team(team)?.quotas ?? state.config.defaultQuotas
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
