/// Keys a running gateway reads once, at start: a reload that changes one is refused, naming it, rather
/// than accepted while the process keeps the old value.
public enum RestartOnlyKeys {
    /// The restart-only keys whose values differ between `old` and `new`, in the order the reference lists them.
    public static func changed(from old: SparkgateConfig, to new: SparkgateConfig) -> [String] {
        var keys: [String] = []
        if old.listen != new.listen { keys.append("listen") }
        if old.admin.listen != new.admin.listen { keys.append("admin.listen") }
        let a = old.state
        let b = new.state
        if a.kind != b.kind { keys.append("state.kind") }
        if a.redis.addresses != b.redis.addresses { keys.append("state.redis.addresses") }
        if a.redis.sentinel != b.redis.sentinel { keys.append("state.redis.sentinel") }
        if a.redis.database != b.redis.database { keys.append("state.redis.database") }
        if a.redis.passwordFile != b.redis.passwordFile { keys.append("state.redis.password_file") }
        if a.redis.username != b.redis.username { keys.append("state.redis.username") }
        if a.redis.secretFile != b.redis.secretFile { keys.append("state.redis.secret_file") }
        if a.redis.tls != b.redis.tls { keys.append("state.redis.tls") }
        if a.redis.keyPrefix != b.redis.keyPrefix { keys.append("state.redis.key_prefix") }
        if a.redis.timeoutMilliseconds != b.redis.timeoutMilliseconds { keys.append("state.redis.timeout_ms") }
        if a.redis.heartbeatSeconds != b.redis.heartbeatSeconds { keys.append("state.redis.heartbeat_seconds") }
        if a.quotasPolicy != b.quotasPolicy { keys.append("state.failure_policy.quotas") }
        if a.ownershipPolicy != b.ownershipPolicy { keys.append("state.failure_policy.ownership") }
        if old.tracing != new.tracing { keys.append("tracing") }
        return keys
    }
}
