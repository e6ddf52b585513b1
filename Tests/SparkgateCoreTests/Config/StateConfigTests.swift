import SparkgateCore
import Testing

@Suite("Configuration: shared state, Sentinel and restart-only keys")
struct StateConfigTests {
    func parse(_ yaml: String) throws(ConfigError) -> SparkgateConfig {
        try ConfigTests().parse(ConfigTests.minimal + "\n" + yaml)
    }
    func issues(_ yaml: String) -> [ConfigIssue] { ConfigTests().issues(ConfigTests.minimal + "\n" + yaml) }

    @Test("Sentinel: addresses, master name and password file as written")
    func sentinel() throws {
        let c = try parse(
            """
            state:
              kind: redis
              redis:
                sentinel:
                  addresses: ["10.0.0.7:26379", "10.0.0.8:26379"]
                  master_name: sparkgate
                  password_file: secrets/sentinel
                database: 3
            """)
        let s = try #require(c.state.redis.sentinel)
        #expect(s.addresses == [HostPort(host: "10.0.0.7", port: 26379), HostPort(host: "10.0.0.8", port: 26379)])
        #expect(s.masterName == "sparkgate")
        #expect(s.passwordFile == "/etc/sparkgate/secrets/sentinel")
        #expect(c.state.redis.database == 3)
    }

    @Test("Sentinel mistakes are named at their key")
    func sentinelMistakes() {
        let found = issues(
            """
            state:
              kind: redis
              redis:
                addresses: ["10.0.0.7:6379"]
                sentinel:
                  addresses: ["nope"]
                  master_name: "two words"
            """)
        #expect(
            found.contains {
                $0.key == "state.redis.sentinel" && $0.message.contains("together with state.redis.addresses")
            }, "\(found)")
        #expect(
            found.contains { $0.key == "state.redis.sentinel.addresses[0]" && $0.message.contains("not host:port") },
            "\(found)")
        #expect(found.contains { $0.key == "state.redis.sentinel.master_name" }, "\(found)")
        let missing = issues(
            """
            state:
              kind: redis
              redis:
                sentinel: {}
            """)
        #expect(
            missing.contains { $0.key == "state.redis.sentinel.addresses" && $0.message.contains("is required") },
            "\(missing)")
        #expect(
            missing.contains { $0.key == "state.redis.sentinel.master_name" && $0.message.contains("is required") },
            "\(missing)")
    }

    @Test("a reload may not change what the process reads once: each changed key is named")
    func restartOnly() throws {
        let old = try parse("state:\n  kind: memory")
        #expect(RestartOnlyKeys.changed(from: old, to: old).isEmpty)
        var new = old
        new.state.kind = .redis
        new.state.redis.heartbeatSeconds = 5
        new.listen = HostPort(host: "0.0.0.0", port: 15443)
        #expect(
            RestartOnlyKeys.changed(from: old, to: new) == ["listen", "state.kind", "state.redis.heartbeat_seconds"])
        // Quotas, teams and backends reload.
        var reloadable = old
        reloadable.defaultQuotas.maxSessionsPerUser = 1
        #expect(RestartOnlyKeys.changed(from: old, to: reloadable).isEmpty)
    }
}
