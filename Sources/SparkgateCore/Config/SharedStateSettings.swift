/// Where the state that several replicas must agree on lives: quotas and session ownership.
public struct SharedStateSettings: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// In this process only: right for one replica.
        case memory
        /// In Redis, shared by every replica that points at it.
        case redis
    }

    /// What to do when the shared state cannot be reached.
    public enum FailurePolicy: String, Sendable, CaseIterable {
        /// Decide with this replica's own records (limits then hold per replica).
        case failOpen = "fail_open"
        /// Refuse the call with UNAVAILABLE naming the shared state.
        case failClosed = "fail_closed"
    }

    /// Redis Sentinel, instead of fixed addresses: the gateway asks the sentinels for the master of
    /// `masterName` and follows its failovers.
    public struct Sentinel: Sendable, Equatable {
        public var addresses: [HostPort] = []
        public var masterName = ""
        /// The sentinels' own password (Sentinel's `requirepass`), if they have one.
        public var passwordFile: String?

        public init() {}
    }

    public struct Redis: Sendable, Equatable {
        public var addresses = [HostPort(host: "127.0.0.1", port: 6379)]
        public var sentinel: Sentinel?
        /// The logical database (SELECT).
        public var database = 0
        public var passwordFile: String?
        /// An ACL user (`AUTH <username> <password>`); the default user when unset.
        public var username: String?
        /// The secret every replica shares: launched engines' tokens are derived from it, and every record
        /// and message a replica writes is sealed with it (`RecordSeal`). Required with launch pools.
        public var secretFile: String?
        public var tls = false
        public var keyPrefix = "sparkgate:"
        public var timeoutMilliseconds = 200
        /// How often a replica renews what it holds (its operations and busy sessions). A record a replica
        /// stops renewing (it died) expires `holdingSeconds` after its last renewal.
        public var heartbeatSeconds = 15.0

        /// Four missed heartbeats: 60 s with the default.
        public var holdingSeconds: Double { heartbeatSeconds * 4 }

        public init() {}
    }

    public var kind = Kind.memory
    public var redis = Redis()
    public var quotasPolicy = FailurePolicy.failOpen
    public var ownershipPolicy = FailurePolicy.failClosed

    public init() {}
}

/// Active health checks of a backend's endpoints.
public struct HealthSettings: Sendable, Equatable {
    public var intervalSeconds = 5.0
    public var timeoutSeconds = 2.0
    /// Consecutive failures (checks, or connections that fail) before an endpoint takes no new sessions.
    public var unhealthyAfter = 3
    /// Consecutive successful checks before it takes new sessions again.
    public var healthyAfter = 1
    /// Move a session whose endpoint is down to a healthy one. Off by default: a Spark session's state (temp
    /// views, cached data, artifacts) lives on its server, so a moved session silently starts empty.
    public var moveSessions = false

    public init() {}
}
