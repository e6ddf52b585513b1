/// Keys a running gateway reads once, at start: a reload that changes one is refused, naming it, rather
/// than accepted while the process keeps the old value. Which keys these are is `ConfigurationKeys`'
/// `restart` rows; `ConfigurationReferenceTests` checks that every one of them is compared here.
public enum RestartOnlyKeys {
    typealias Comparison = (key: String, differs: @Sendable (SparkgateConfig, SparkgateConfig) -> Bool)

    /// Each key with how its value is told apart, in the order the reference lists them. A section compared
    /// whole (`tracing`, `state.redis.sentinel`) stands for the keys inside it.
    static let comparisons: [Comparison] = [
        ("listen", { $0.listen != $1.listen }),
        ("admin.listen", { $0.admin.listen != $1.admin.listen }),
        ("admin.max_connections", { $0.admin.maxConnections != $1.admin.maxConnections }),
        ("state.kind", { $0.state.kind != $1.state.kind }),
        ("state.redis.addresses", { $0.state.redis.addresses != $1.state.redis.addresses }),
        ("state.redis.sentinel", { $0.state.redis.sentinel != $1.state.redis.sentinel }),
        ("state.redis.database", { $0.state.redis.database != $1.state.redis.database }),
        ("state.redis.password_file", { $0.state.redis.passwordFile != $1.state.redis.passwordFile }),
        ("state.redis.username", { $0.state.redis.username != $1.state.redis.username }),
        ("state.redis.secret_file", { $0.state.redis.secretFile != $1.state.redis.secretFile }),
        ("state.redis.tls", { $0.state.redis.tls != $1.state.redis.tls }),
        ("state.redis.key_prefix", { $0.state.redis.keyPrefix != $1.state.redis.keyPrefix }),
        ("state.redis.timeout_ms", { $0.state.redis.timeoutMilliseconds != $1.state.redis.timeoutMilliseconds }),
        ("state.redis.heartbeat_seconds", { $0.state.redis.heartbeatSeconds != $1.state.redis.heartbeatSeconds }),
        ("state.failure_policy.quotas", { $0.state.quotasPolicy != $1.state.quotasPolicy }),
        ("state.failure_policy.ownership", { $0.state.ownershipPolicy != $1.state.ownershipPolicy }),
        ("tracing", { $0.tracing != $1.tracing }),
    ]

    /// The keys compared.
    public static var compared: [String] { comparisons.map(\.key) }

    /// The restart-only keys whose values differ between `old` and `new`, in the order the reference lists them.
    public static func changed(from old: SparkgateConfig, to new: SparkgateConfig) -> [String] {
        comparisons.filter { $0.differs(old, new) }.map(\.key)
    }
}
