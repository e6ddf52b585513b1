import NIOSSL
import SparkgateAuth
import SparkgateCore
import SparkgateEngines
import SparkgateObservability
import SparkgateSharedState
import SparkgateTransport

/// Everything a configuration generation decides, built once and shared read-only by every RPC that starts
/// under it. A reload builds a new one; RPCs already running keep theirs.
public final class GatewayGeneration: Sendable {
    public let config: SparkgateConfig
    public let authenticator: Authenticator
    /// Keys from the configuration and JWKS files; JWKS URL keys are merged in by the refresher.
    public let staticKeys: KeyRing
    /// Backend name → the token Sparkgate presents to it.
    let backendTokens: [String: String]
    let backendTLS: [String: NIOSSLContext]
    let serverTLS: NIOSSLContext?
    let namespace: SessionNamespace?
    let adminToken: String?
    /// From `admin.read_token_file`: opens GETs only.
    let adminReadToken: String?
    /// The moment the server certificate stops being valid (for /readyz).
    let certificateNotAfter: Double?
    /// From `state.redis.password_file`.
    let redisPassword: String?
    /// From `state.redis.sentinel.password_file`.
    let sentinelPassword: String?
    let redisTLS: NIOSSLContext?
    /// From `state.redis.secret_file`: derives engine tokens and seals shared records. Without the file, a
    /// secret of this process alone (one replica), or with Redis and no launch pool a key derived from the
    /// key prefix, which keeps records apart from accidents but not from whoever can write to Redis.
    let recordSeal: RecordSeal
    /// What `sparkgate config check` warns about (secret files other users can read).
    public let warnings: [ConfigIssue]
    /// What this generation decides for every call.
    let callPolicy: CallPolicy
    /// What reaching each backend takes: its settings, token and TLS context.
    let backendAccess: BackendAccess

    init(
        config: SparkgateConfig, authenticator: Authenticator, staticKeys: KeyRing, backendTokens: [String: String],
        backendTLS: [String: NIOSSLContext],
        serverTLS: NIOSSLContext?, adminToken: String?, adminReadToken: String? = nil, certificateNotAfter: Double?,
        redisPassword: String? = nil, sentinelPassword: String? = nil,
        redisTLS: NIOSSLContext? = nil, recordSecret: [UInt8]? = nil, warnings: [ConfigIssue] = []
    ) {
        if let recordSecret {
            self.recordSeal = RecordSeal(secret: recordSecret)
        } else if config.state.kind == .redis {
            self.recordSeal = RecordSeal(
                secret: Array("sparkgate records without secret_file: \(config.state.redis.keyPrefix)".utf8))
        } else {
            self.recordSeal = .random()
        }
        self.warnings = warnings
        self.redisPassword = redisPassword
        self.sentinelPassword = sentinelPassword
        self.redisTLS = redisTLS
        self.config = config
        self.authenticator = authenticator
        self.staticKeys = staticKeys
        self.backendTokens = backendTokens
        self.backendTLS = backendTLS
        self.serverTLS = serverTLS
        self.namespace = config.sessions.namespaceSessionIDs ? SessionNamespace(config.sessions.namespace) : nil
        self.adminToken = adminToken
        self.adminReadToken = adminReadToken
        self.certificateNotAfter = certificateNotAfter
        self.backendAccess = BackendAccess(config: config, tokens: backendTokens, tls: backendTLS)
        self.callPolicy = CallPolicy(
            maxMessageBytes: config.maxMessageBytes, configPolicy: config.configPolicy, namespace: namespace,
            rejectForeignSessionIDs: config.sessions.rejectForeignSessionIDs, streamWindow: HTTP2Tuning.streamWindow,
            maxBufferedPerStream: HTTP2Tuning.maxBufferedPerStream,
            maxRequestHeaderBytes: config.limits.maxRequestHeaderBytes,
            maxBufferedBytes: config.limits.maxBufferedBytes, maxTokenBytes: config.auth.maxTokenBytes,
            backends: BackendDirectory(backends: config.backends, tokens: backendTokens))
    }

    /// The metrics label for a team: configured names only, so labels stay bounded.
    func teamLabel(_ team: String) -> String {
        config.teams[team] != nil ? team : GatewayMetrics.unlistedTeam
    }
}
