import SparkgateCore
import Testing

@Suite("Configuration")
struct ConfigTests {
    static let minimal = """
        listen: "127.0.0.1:15443"
        insecure_plaintext: true
        auth:
          keys:
            - kid: k1
              algorithm: ES256
              public_key: keys/k1.pub.pem
        backends:
          local:
            endpoints: ["127.0.0.1:15002"]
        """

    func parse(_ yaml: String) throws(ConfigError) -> SparkgateConfig {
        try SparkgateConfig.parse(yaml: yaml, file: "/etc/sparkgate/sparkgate.yaml")
    }

    func issues(_ yaml: String) -> [ConfigIssue] {
        do {
            _ = try parse(yaml)
            return []
        } catch {
            return error.issues
        }
    }

    @Test("defaults follow the interface; paths resolve against the config file")
    func defaults() throws {
        let c = try parse(Self.minimal)
        #expect(c.maxMessageBytes == 134_217_728)
        #expect(c.admin.listen == HostPort(host: "127.0.0.1", port: 9464))
        #expect(c.auth.keys[0].publicKey == "/etc/sparkgate/keys/k1.pub.pem")
        #expect(c.defaultQuotas == QuotaSettings())
        #expect(c.sessions.rejectForeignSessionIDs && c.sessions.namespaceSessionIDs)
        #expect(c.configPolicy.denyKeys == ConfigPolicy.defaultDenyKeys)
        #expect(c.auditLog == .stdout)
        #expect(c.team("nobody") == nil)
    }

    @Test("team quotas override the defaults key by key")
    func teamQuotas() throws {
        let c = try parse(
            Self.minimal + """

                defaults:
                  backend: local
                  quotas:
                    max_sessions_per_user: 3
                    requests_per_second: 10
                teams:
                  analytics:
                    quotas:
                      max_concurrent_operations_per_session: 2
                  ops: {}
                """)
        let a = c.team("analytics")!.quotas
        #expect(a.maxConcurrentOperationsPerSession == 2)
        #expect(a.maxSessionsPerUser == 3)
        #expect(a.requestsPerSecond == 10)
        #expect(c.team("ops")!.quotas.maxSessionsPerUser == 3)
        #expect(c.team("ops")!.backend == "local")
    }

    @Test("every problem names its key, file and line")
    func errors() {
        let found = issues(
            """
            listn: "0.0.0.0:1"
            listen: "nowhere"
            max_message_bytes: -5
            auth:
              keys:
                - kid: a
                  algorithm: ES257
                - kid: b
                  algorithm: HS256
                - algorithm: RS256
            backends:
              local:
                endpoints: []
            defaults:
              backend: missing
            teams:
              x:
                backend: nope
                quotas:
                  request_burst: zero
            """)
        let text = found.map(\.description)
        func has(_ key: String, _ fragment: String) -> Bool {
            found.contains {
                $0.key == key && $0.message.contains(fragment) && $0.file == "/etc/sparkgate/sparkgate.yaml"
            }
        }
        #expect(has("listn", "did you mean 'listen'"), "\(text)")
        #expect(has("listen", "not host:port"))
        #expect(has("max_message_bytes", "between"))
        #expect(has("auth.keys[0].algorithm", "'ES257' is not one of"))
        #expect(has("auth.keys[1].secret_file", "is required for HS256"))
        #expect(has("auth.keys[2].kid", "is required"))
        #expect(has("backends.local.endpoints", "at least one"))
        #expect(has("defaults.backend", "'missing' is not under backends"))
        #expect(has("teams.x.quotas.request_burst", "whole number"))
        #expect(has("tls", "insecure_plaintext"))
        #expect(
            found.allSatisfy {
                $0.line != nil || ["tls", "backends", "auth.keys"].contains($0.key) || $0.key.hasPrefix("teams")
                    || $0.key.hasPrefix("defaults")
            })
    }

    @Test("state and health: values as written, and each mistake named at its key and line")
    func stateAndHealth() throws {
        let c = try parse(
            Self.minimal + """

                    health: {interval_seconds: 1, timeout_seconds: 0.5, unhealthy_after: 2, move_sessions: true}
                state:
                  kind: redis
                  redis: {addresses: ["10.0.0.7:6379", "10.0.0.8:6380"], key_prefix: "sg:", timeout_ms: 50, heartbeat_seconds: 2}
                  failure_policy: {quotas: fail_closed}
                """)
        #expect(c.state.kind == .redis && c.state.redis.addresses.count == 2 && c.state.redis.keyPrefix == "sg:")
        #expect(c.state.redis.timeoutMilliseconds == 50 && c.state.redis.holdingSeconds == 8)
        #expect(c.state.quotasPolicy == .failClosed && c.state.ownershipPolicy == .failClosed)
        let health = c.backends["local"]!.health
        #expect(
            health.intervalSeconds == 1 && health.unhealthyAfter == 2 && health.healthyAfter == 1 && health.moveSessions
        )
        #expect(try parse(Self.minimal).state == SharedStateSettings())

        let found = issues(
            Self.minimal + """

                    health: {interval_seconds: 1, timeout_seconds: 3}
                state:
                  kind: etcd
                  redis: {addresses: ["nowhere"], timeout_ms: 0}
                  failure_policy: {quotas: sometimes}
                """)
        func has(_ key: String, _ fragment: String) -> Bool {
            found.contains { $0.key == key && $0.message.contains(fragment) && $0.line != nil }
        }
        #expect(has("state.kind", "'etcd' is not memory or redis"), "\(found)")
        #expect(has("state.redis.addresses[0]", "not host:port"))
        #expect(has("state.redis.timeout_ms", "between"))
        #expect(has("state.failure_policy.quotas", "'sometimes' is not fail_open or fail_closed"))
        #expect(has("backends.local.health.timeout_seconds", "longer than interval_seconds"))
    }

    @Test("launch pools: values as written, and each mistake named at its key and line")
    func launchPools() throws {
        let pool = Self.minimal.replacingOccurrences(
            of: """
                    endpoints: ["127.0.0.1:15002"]
                """,
            with: """
                    launch:
                      command: ["sail", "spark", "server", "--port", "{port}"]
                      environment: {TOKEN_FILE: "{token_file}"}
                      share: user
                      ports: "21000-21009"
                      work_dir: engines
                      idle_seconds: 30
                      max_engines: 4
                      max_engines_per_team: 2
                """)
        let launch = try #require(try parse(pool).backends["local"]?.launch)
        #expect(
            launch.command == ["sail", "spark", "server", "--port", "{port}"] && launch.share == .user
                && launch.ports == 21000...21009)
        #expect(
            launch.environment == ["TOKEN_FILE": "{token_file}"] && launch.workDirectory == "/etc/sparkgate/engines")
        #expect(
            launch.idleSeconds == 30 && launch.maxEngines == 4 && launch.teamLimit == 2
                && launch.startupTimeoutSeconds == 120)

        let bad = Self.minimal.replacingOccurrences(
            of: """
                    endpoints: ["127.0.0.1:15002"]
                """,
            with: """
                    endpoints: ["127.0.0.1:15002"]
                    token_env: T
                    launch:
                      command: ["engine", "--port", "{prot}"]
                      share: everyone
                      ports: "9-3"
                      max_engines: 2
                      max_engines_per_team: 3
                """)
        let found = issues(bad)
        func has(_ key: String, _ fragment: String) -> Bool {
            found.contains { $0.key == key && $0.message.contains(fragment) && $0.line != nil }
        }
        #expect(has("backends.local.launch.command[2]", "unknown placeholder {prot}"))
        #expect(has("backends.local.launch.command", "never uses {port}"))
        #expect(has("backends.local.launch.share", "not team, user or server"))
        #expect(has("backends.local.launch.ports", "not a port range"))
        #expect(has("backends.local.launch.max_engines_per_team", "more than max_engines"))
        #expect(has("backends.local.endpoints", "endpoints or launch, not both"))
        #expect(has("backends.local.token_env", "does not apply to a launch pool"))

        // Several replicas share a launch pool through Redis: only behind a Redis password, with the
        // replicas' secret, at an address that names this machine.
        let open = issues(pool + "\nstate:\n  kind: redis\n")
        #expect(
            open.contains {
                $0.key == "state.redis.password_file" && $0.message.contains("an engine's code can reach it")
            })
        #expect(
            open.contains { $0.key == "state.redis.secret_file" && $0.message.contains("at least 32 random bytes") })
        #expect(
            open.contains {
                $0.key == "backends.local.launch.advertise_host" && $0.message.contains("is required with shared state")
            })
        let closed =
            "\nstate:\n  kind: redis\n  redis:\n    password_file: redis.pass\n    secret_file: replicas.secret\n"
        #expect(
            issues(
                pool.replacingOccurrences(of: "max_engines: 4", with: "max_engines: 4\n      advertise_host: 0.0.0.0")
                    + closed
            ).contains {
                $0.key == "backends.local.launch.advertise_host" && $0.message.contains("names no machine")
            })
        #expect(
            issues(
                pool.replacingOccurrences(of: "max_engines: 4", with: "max_engines: 4\n      advertise_host: 10.0.0.7")
                    + closed
            ).isEmpty)
    }

    @Test("tracing: off by default, the traces URL derived from the collector's base URL, mistakes named")
    func tracing() throws {
        #expect(try parse(Self.minimal).tracing == TracingSettings())
        #expect(!TracingSettings().enabled)
        let on = try parse(
            Self.minimal
                + "\ntracing:\n  otlp_endpoint: http://collector:4318/\n  sample_ratio: 1\n  service_name: gw\n"
        ).tracing
        #expect(
            on.enabled && on.tracesURL == "http://collector:4318/v1/traces" && on.sampleRatio == 1
                && on.serviceName == "gw")
        var full = TracingSettings()
        full.otlpEndpoint = "https://c.example/v1/traces"
        #expect(full.tracesURL == "https://c.example/v1/traces")
        let found = issues(
            Self.minimal + "\ntracing:\n  otlp_endpoint: collector:4318\n  sample_ratio: 2\n  sampling: 1\n")
        #expect(
            found.contains {
                $0.key == "tracing.otlp_endpoint" && $0.message.contains("not an http:// or https:// URL")
                    && $0.line != nil
            })
        #expect(found.contains { $0.key == "tracing.sample_ratio" && $0.message.contains("more than 1") })
        #expect(found.contains { $0.key == "tracing.sampling" && $0.message.contains("unknown key") })
    }

    @Test("an admin listener off loopback needs a token file")
    func adminExposure() {
        let found = issues(Self.minimal + "\nadmin:\n  listen: \"0.0.0.0:9464\"\n")
        #expect(found.contains { $0.key == "admin.listen" && $0.message.contains("token_file") })
        #expect(issues(Self.minimal + "\nadmin:\n  listen: \"0.0.0.0:9464\"\n  token_file: admin.token\n").isEmpty)
    }

    @Test(
        "an unknown backend is reported where it is written: defaults.backend, or the team's own backend key at its line"
    )
    func unknownBackends() {
        let inherited = issues(Self.minimal + "\ndefaults:\n  backend: nowhere\nteams:\n  a: {}\n")
        #expect(inherited.map(\.key) == ["defaults.backend"])
        let own = issues(Self.minimal + "\nteams:\n  a: {}\n  b:\n    backend: elsewhere\n")
        #expect(
            own.count == 1 && own[0].key == "teams.b.backend" && own[0].line == 14
                && own[0].message.contains("have: local"))
    }

    @Test("jwks_urls must be https; plaintext needs a per-URL opt-in")
    func jwksURLs() throws {
        let auth = "auth:\n  keys:\n    - kid: k1\n      algorithm: ES256\n      public_key: keys/k1.pub.pem\n"
        func with(_ urls: String) -> String {
            Self.minimal.replacingOccurrences(of: auth, with: auth + "  jwks_urls:\n" + urls)
        }
        let plain = issues(with("    - http://idp.example/jwks.json\n"))
        #expect(
            plain.count == 1 && plain[0].key == "auth.jwks_urls[0]" && plain[0].message.contains("allow_plaintext")
                && plain[0].line == 9)
        #expect(
            issues(with("    - ftp://idp.example/jwks.json\n")).contains {
                $0.key == "auth.jwks_urls[0]" && $0.message.contains("https://")
            })
        #expect(
            issues(with("    - {url: http://127.0.0.1:8080/jwks.json, allow_plaintext: yes_please}\n")).contains {
                $0.key == "auth.jwks_urls[0].allow_plaintext"
            })
        #expect(issues(with("    - {allow_plaintext: true}\n")).contains { $0.key == "auth.jwks_urls[0].url" })
        let config = try parse(
            with(
                "    - https://idp.example/jwks.json\n    - {url: http://127.0.0.1:8080/jwks.json, allow_plaintext: true}\n"
            ))
        #expect(config.auth.jwksURLs == ["https://idp.example/jwks.json", "http://127.0.0.1:8080/jwks.json"])
    }

    @Test("tls and insecure_plaintext are exclusive; duplicate kids are refused")
    func exclusive() {
        let yaml = Self.minimal.replacingOccurrences(
            of: "insecure_plaintext: true",
            with: "insecure_plaintext: true\ntls:\n  certificate: a.crt\n  private_key: a.key")
        #expect(issues(yaml).contains { $0.key == "insecure_plaintext" })
        let keys = """
            insecure_plaintext: true
            auth:
              keys:
                - {kid: k1, algorithm: ES256, public_key: a.pem}
                - {kid: k1, algorithm: ES256, public_key: b.pem}
            backends:
              local: {endpoints: ["127.0.0.1:1"]}
            """
        #expect(issues(keys).contains { $0.key == "auth.keys[1].kid" && $0.message.contains("unique") })
    }

    @Test("not YAML, or empty, is reported as such")
    func notYAML() {
        #expect(issues("a: [unclosed").first?.message.contains("not valid YAML") == true)
        #expect(issues("").first?.message.contains("empty") == true)
    }

    @Test("host:port parsing")
    func hostPort() {
        #expect(HostPort(parsing: "[::1]:15443") == HostPort(host: "::1", port: 15443))
        #expect(HostPort(parsing: "[::1]:15443")?.authority == "[::1]:15443")
        #expect(HostPort(host: "spark", port: 15002).description == "spark:15002")
        #expect(HostPort(parsing: "localhost:1") == HostPort(host: "localhost", port: 1))
        #expect(HostPort(parsing: "::1:80") == nil)
        #expect(HostPort(parsing: "host") == nil)
        #expect(HostPort(parsing: "host:70000") == nil)
        #expect(HostPort(host: "127.0.0.2", port: 1).isLoopback && !HostPort(host: "0.0.0.0", port: 1).isLoopback)
    }

    @Test("limits default to the interface's values and are read key by key, with errors that name the key")
    func limits() throws {
        let d = try parse(Self.minimal).limits
        #expect(
            d.tlsHandshakeTimeoutSeconds == 10 && d.firstRequestTimeoutSeconds == 10
                && d.idleConnectionTimeoutSeconds == 300)
        #expect(d.keepaliveIntervalSeconds == 60 && d.keepaliveTimeoutSeconds == 20 && d.maxConnectionAgeSeconds == 0)
        #expect(d.maxConnections == 10_000 && d.maxConnectionsPerAddress == 256 && d.maxConcurrentStreams == 256)
        #expect(d.maxAuthFailuresPerConnection == 20 && d.maxBufferedBytes == 1 << 30)
        let c = try parse(
            Self.minimal + """

                limits:
                  max_concurrent_streams: 100
                  idle_connection_timeout_seconds: 0
                  max_buffered_bytes: 268435456
                """)
        #expect(
            c.limits.maxConcurrentStreams == 100 && c.limits.idleConnectionTimeoutSeconds == 0
                && c.limits.maxBufferedBytes == 256 << 20)
        let bad = issues(
            Self.minimal + """

                limits:
                  max_concurent_streams: 100
                  max_connections: 0
                  max_request_header_bytes: 1048576
                """)
        #expect(
            bad.contains {
                $0.key == "limits.max_concurent_streams" && $0.message.contains("did you mean 'max_concurrent_streams'")
            })
        #expect(bad.contains { $0.key == "limits.max_connections" && $0.line != nil })
        #expect(
            bad.contains { $0.key == "limits.max_request_header_bytes" && $0.message.contains("max_header_list_bytes") }
        )
    }
}
