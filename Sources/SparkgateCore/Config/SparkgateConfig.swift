/// Sparkgate's configuration: the YAML of `shared/reference/interface.md`, validated, with file paths made
/// absolute against the config file's directory.
public struct SparkgateConfig: Sendable, Equatable {
    public struct TLS: Sendable, Equatable {
        public var certificate: String
        public var privateKey: String
        public var clientCA: String?
    }

    public struct Admin: Sendable, Equatable {
        public var listen = HostPort(host: "127.0.0.1", port: 9464)
        public var tokenFile: String?
        /// A second token that opens every GET (metrics, sessions, engines) and nothing that changes the
        /// gateway: for Prometheus and dashboards.
        public var readTokenFile: String?
        /// Without a token, reload and kill are refused unless this is set (any local process could call them).
        public var allowUnauthenticatedMutations = false
        /// Without a token, GETs (which list every session id, user and engine) are refused unless this is
        /// set: a tenant's code on the gateway's host reaches the loopback admin port too.
        public var allowUnauthenticatedReads = false
        /// Connections the admin listener holds at once; more are closed at accept.
        public var maxConnections = 64
        /// `/readyz` without the admin token, for probes and balancers that cannot send one (its reasons name
        /// backends and endpoints, so keep the admin port off the public network).
        public var publicReadiness = false

        public init() {}
    }

    public enum Algorithm: String, Sendable, Equatable, CaseIterable {
        case hs256 = "HS256", hs384 = "HS384", hs512 = "HS512"
        case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"
        case ps256 = "PS256", ps384 = "PS384", ps512 = "PS512"
        case es256 = "ES256", es384 = "ES384"
        case eddsa = "EdDSA"

        public var isHMAC: Bool { rawValue.hasPrefix("HS") }
    }

    public struct Key: Sendable, Equatable {
        public var kid: String
        public var algorithm: Algorithm
        public var publicKey: String?
        public var privateKey: String?
        public var secretFile: String?

        public init(
            kid: String, algorithm: Algorithm, publicKey: String? = nil, privateKey: String? = nil,
            secretFile: String? = nil
        ) {
            self.kid = kid
            self.algorithm = algorithm
            self.publicKey = publicKey
            self.privateKey = privateKey
            self.secretFile = secretFile
        }
    }

    public struct Auth: Sendable, Equatable {
        public var issuer = "sparkgate-dev"
        public var audience = "spark-connect"
        public var leewaySeconds = 30.0
        public var maxTokenBytes = 8192
        public var userClaim = "sub"
        public var teamClaim = "team"
        public var groupsClaim = "groups"
        public var keys: [Key] = []
        public var jwksFiles: [String] = []
        public var jwksURLs: [String] = []
        public var jwksRefreshSeconds = 300.0
        public var revokedTokenIDsFile: String?
    }

    public struct Backend: Sendable, Equatable {
        public var name: String
        public var endpoints: [HostPort]
        public var tokenEnv: String?
        public var tokenFile: String?
        public var tls = false
        /// PEM bundle to trust for a TLS backend; the system roots otherwise.
        public var tlsCA: String?
        public var connectTimeoutSeconds = 5.0
        public var health = HealthSettings()
        /// Engines launched on demand instead of `endpoints`.
        public var launch: LaunchSettings?

        public init(name: String, endpoints: [HostPort], tls: Bool = false, launch: LaunchSettings? = nil) {
            self.name = name
            self.endpoints = endpoints
            self.tls = tls
            self.launch = launch
        }
    }

    public struct Team: Sendable, Equatable {
        public var backend: String
        public var quotas: QuotaSettings

        public init(backend: String, quotas: QuotaSettings) {
            self.backend = backend
            self.quotas = quotas
        }
    }

    public struct Sessions: Sendable, Equatable {
        public var rejectForeignSessionIDs = true
        public var namespaceSessionIDs = true
        /// The UUIDv5 namespace for backend session ids. Replicas that share a backend must share it.
        public var namespace = "6f0f1bd3-5f5a-4b8e-9a51-8a6a3c1e2d47"
        /// An operation with no stream attached for this long is considered abandoned (Spark's default is 5 minutes).
        public var operationDetachedSeconds = 300.0
    }

    public enum AuditLog: Sendable, Equatable {
        case stdout
        case off
        case file(String)
    }

    /// The file this configuration was read from.
    public var file: String
    public var listen = HostPort(host: "0.0.0.0", port: 15443)
    public var tls: TLS?
    public var insecurePlaintext = false
    public var maxMessageBytes = 134_217_728
    public var admin = Admin()
    public var auth = Auth()
    public var backends: [String: Backend] = [:]
    public var defaultBackend = "local"
    public var defaultQuotas = QuotaSettings()
    public var teams: [String: Team] = [:]
    public var allowUnknownTeams = false
    public var sessions = Sessions()
    public var configPolicy = ConfigPolicy(denyKeys: ConfigPolicy.defaultDenyKeys)
    public var auditLog = AuditLog.stdout
    public var shutdownGraceSeconds = 30.0
    public var limits = ConnectionLimits()
    public var state = SharedStateSettings()
    public var tracing = TracingSettings()

    public init(file: String) {
        self.file = file
    }

    /// The backend and quotas for a team; unknown teams (when allowed) get the defaults.
    public func team(_ name: String) -> Team? {
        if let team = teams[name] { return team }
        return allowUnknownTeams ? Team(backend: defaultBackend, quotas: defaultQuotas) : nil
    }
}
