import Foundation
import Yams

extension SparkgateConfig {
    /// Reads and validates the configuration file at `file`.
    public static func load(file: String) throws(ConfigError) -> SparkgateConfig {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ConfigError([
                ConfigIssue(file: file, key: "", message: "cannot read the file: \(error.localizedDescription)")
            ])
        }
        return try parse(yaml: text, file: file)
    }

    /// Validates a YAML document; `file` names it in errors and anchors relative paths.
    public static func parse(yaml: String, file: String) throws(ConfigError) -> SparkgateConfig {
        try parse(yaml: yaml, reader: ConfigReader(file: file))
    }

    /// Every key the configuration accepts that `yaml` reaches (a document that uses every section reaches
    /// them all), generalised (`backends.<name>.endpoints`, `auth.keys[].kid`), with the problems found.
    /// The configuration reference is checked against it, so a key cannot exist in one and not the other.
    public static func acceptedKeys(reachedBy yaml: String) -> (keys: Set<String>, issues: [ConfigIssue]) {
        let reader = ConfigReader(file: "reference.yaml")
        reader.recordsKeys = true
        do {
            _ = try parse(yaml: yaml, reader: reader)
            return (reader.allowedKeys, [])
        } catch {
            return (reader.allowedKeys, error.issues)
        }
    }

    static func parse(yaml: String, reader: ConfigReader) throws(ConfigError) -> SparkgateConfig {
        let file = reader.file
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: yaml) else {
                throw ConfigError([ConfigIssue(file: file, key: "", message: "the file is empty")])
            }
            root = node
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError([ConfigIssue(file: file, key: "", message: "not valid YAML: \(error)")])
        }
        var config = SparkgateConfig(file: file)
        let top = reader.mapping(
            root, "",
            allowed: [
                "listen", "tls", "insecure_plaintext", "max_message_bytes", "admin", "auth", "backends", "defaults",
                "teams", "allow_unknown_teams", "sessions", "config_policy", "audit_log", "shutdown_grace_seconds",
                "limits", "state",
                "tracing",
            ])
        if let n = top["listen"], let v = reader.hostPort(n, "listen") { config.listen = v }
        if let n = top["insecure_plaintext"], let v = reader.bool(n, "insecure_plaintext") {
            config.insecurePlaintext = v
        }
        if let n = top["max_message_bytes"], let v = reader.int(n, "max_message_bytes", min: 1024, max: 2_147_483_647) {
            config.maxMessageBytes = v
        }
        if let n = top["tls"], !reader.isNull(n) { config.tls = readTLS(n, reader) }
        if let n = top["admin"] { readAdmin(n, reader, into: &config.admin) }
        if let n = top["auth"] { readAuth(n, reader, into: &config.auth) }
        if let n = top["backends"] { config.backends = readBackends(n, reader) }
        if let n = top["defaults"] { readDefaults(n, reader, into: &config) }
        if let n = top["teams"] { config.teams = readTeams(n, reader, defaults: config) }
        if let n = top["state"], !reader.isNull(n) { config.state = readState(n, reader) }
        if let n = top["tracing"], !reader.isNull(n) { config.tracing = readTracing(n, reader) }
        if let n = top["allow_unknown_teams"], let v = reader.bool(n, "allow_unknown_teams") {
            config.allowUnknownTeams = v
        }
        if let n = top["sessions"] { readSessions(n, reader, into: &config.sessions) }
        if let n = top["config_policy"] {
            let m = reader.mapping(n, "config_policy", allowed: ["deny_keys"])
            if let k = m["deny_keys"], let v = reader.stringList(k, "config_policy.deny_keys") {
                config.configPolicy = ConfigPolicy(denyKeys: v)
            }
        }
        if let n = top["audit_log"], let v = reader.string(n, "audit_log") {
            switch v {
            case "stdout": config.auditLog = .stdout
            case "off": config.auditLog = .off
            case "": reader.fail("audit_log", n, "must be stdout, off, or a file path")
            default: config.auditLog = .file(reader.resolve(v))
            }
        }
        if let n = top["shutdown_grace_seconds"], let v = reader.number(n, "shutdown_grace_seconds") {
            config.shutdownGraceSeconds = v
        }
        if let n = top["limits"], !reader.isNull(n) { config.limits = readLimits(n, reader) }
        crossCheck(&config, top, reader)
        guard reader.issues.isEmpty else { throw ConfigError(reader.issues) }
        return config
    }

    private static func readTLS(_ node: Node, _ r: ConfigReader) -> TLS? {
        let m = r.mapping(node, "tls", allowed: ["certificate", "private_key", "client_ca"])
        var certificate: String?
        var privateKey: String?
        if let n = m["certificate"] {
            certificate = r.path(n, "tls.certificate")
        } else {
            r.fail("tls.certificate", node, "is required (a PEM certificate chain)")
        }
        if let n = m["private_key"] {
            privateKey = r.path(n, "tls.private_key")
        } else {
            r.fail("tls.private_key", node, "is required (the PEM private key of tls.certificate)")
        }
        var clientCA: String?
        if let n = m["client_ca"], let v = r.optionalPath(n, "tls.client_ca") { clientCA = v }
        guard let certificate, let privateKey else { return nil }
        return TLS(certificate: certificate, privateKey: privateKey, clientCA: clientCA)
    }

    private static func readAdmin(_ node: Node, _ r: ConfigReader, into admin: inout Admin) {
        let m = r.mapping(
            node, "admin",
            allowed: [
                "listen", "token_file", "read_token_file", "allow_unauthenticated_mutations",
                "allow_unauthenticated_reads", "public_readiness",
                "max_connections",
            ])
        if let n = m["listen"], let v = r.hostPort(n, "admin.listen") { admin.listen = v }
        if let n = m["token_file"], let v = r.optionalPath(n, "admin.token_file") { admin.tokenFile = v }
        if let n = m["read_token_file"], let v = r.optionalPath(n, "admin.read_token_file") { admin.readTokenFile = v }
        if let n = m["allow_unauthenticated_reads"], let v = r.bool(n, "admin.allow_unauthenticated_reads") {
            admin.allowUnauthenticatedReads = v
        }
        if let n = m["max_connections"], let v = r.int(n, "admin.max_connections", min: 1, max: 100_000) {
            admin.maxConnections = v
        }
        if let n = m["allow_unauthenticated_mutations"], let v = r.bool(n, "admin.allow_unauthenticated_mutations") {
            admin.allowUnauthenticatedMutations = v
        }
        if let n = m["public_readiness"], let v = r.bool(n, "admin.public_readiness") { admin.publicReadiness = v }
    }

    /// `auth.jwks_urls`: each entry an `https://` URL, or `{url: http://..., allow_plaintext: true}` for a
    /// development key server. Keys fetched over plaintext can be replaced by anyone on the path.
    private static func readJWKSURLs(_ node: Node, _ r: ConfigReader) -> [String] {
        if r.isNull(node) { return [] }
        guard case .sequence(let seq) = node else {
            r.fail("auth.jwks_urls", node, "must be a list of https:// URLs")
            return []
        }
        var urls: [String] = []
        for (i, item) in seq.enumerated() {
            let key = "auth.jwks_urls[\(i)]"
            var url: String?
            var plaintextAllowed = false
            if case .mapping = item {
                let m = r.mapping(item, key, allowed: ["url", "allow_plaintext"])
                url = m["url"].flatMap { r.nonEmptyString($0, "\(key).url") }
                if let n = m["allow_plaintext"], let v = r.bool(n, "\(key).allow_plaintext") { plaintextAllowed = v }
                if m["url"] == nil { r.fail("\(key).url", item, "is required") }
            } else {
                url = r.nonEmptyString(item, key)
            }
            guard let url else { continue }
            let lower = url.lowercased()
            if lower.hasPrefix("https://") {
                urls.append(url)
            } else if lower.hasPrefix("http://") {
                if plaintextAllowed {
                    urls.append(url)
                } else {
                    r.fail(
                        key, item,
                        "'\(url)' is plaintext HTTP: anyone on the network path could swap the signing keys. Use https://, or for a local development server write {url: \(url), allow_plaintext: true}"
                    )
                }
            } else {
                r.fail(key, item, "'\(url)' must start with https://")
            }
        }
        return urls
    }

    private static func readAuth(_ node: Node, _ r: ConfigReader, into auth: inout Auth) {
        let m = r.mapping(
            node, "auth",
            allowed: [
                "issuer", "audience", "leeway_seconds", "max_token_bytes", "user_claim", "team_claim", "groups_claim",
                "keys",
                "jwks_files", "jwks_urls", "jwks_refresh_seconds", "revoked_token_ids_file",
            ])
        if let n = m["issuer"], let v = r.nonEmptyString(n, "auth.issuer") { auth.issuer = v }
        if let n = m["audience"], let v = r.nonEmptyString(n, "auth.audience") { auth.audience = v }
        if let n = m["leeway_seconds"], let v = r.number(n, "auth.leeway_seconds") { auth.leewaySeconds = v }
        if let n = m["max_token_bytes"], let v = r.int(n, "auth.max_token_bytes", min: 256, max: 1_048_576) {
            auth.maxTokenBytes = v
        }
        if let n = m["user_claim"], let v = r.nonEmptyString(n, "auth.user_claim") { auth.userClaim = v }
        if let n = m["team_claim"], let v = r.nonEmptyString(n, "auth.team_claim") { auth.teamClaim = v }
        if let n = m["groups_claim"], let v = r.nonEmptyString(n, "auth.groups_claim") { auth.groupsClaim = v }
        if let n = m["jwks_files"], let v = r.stringList(n, "auth.jwks_files") { auth.jwksFiles = v.map(r.resolve) }
        if let n = m["jwks_urls"] { auth.jwksURLs = readJWKSURLs(n, r) }
        if let n = m["jwks_refresh_seconds"], let v = r.number(n, "auth.jwks_refresh_seconds", min: 1) {
            auth.jwksRefreshSeconds = v
        }
        if let n = m["revoked_token_ids_file"], let v = r.optionalPath(n, "auth.revoked_token_ids_file") {
            auth.revokedTokenIDsFile = v
        }
        if let n = m["keys"], !r.isNull(n) {
            guard case .sequence(let seq) = n else {
                r.fail("auth.keys", n, "must be a list of keys")
                return
            }
            var seen: Set<String> = []
            for (i, item) in seq.enumerated() {
                let key = "auth.keys[\(i)]"
                let k = r.mapping(item, key, allowed: ["kid", "algorithm", "public_key", "private_key", "secret_file"])
                guard let kidNode = k["kid"], let kid = r.nonEmptyString(kidNode, "\(key).kid") else {
                    if k["kid"] == nil { r.fail("\(key).kid", item, "is required") }
                    continue
                }
                if !seen.insert(kid).inserted {
                    r.fail("\(key).kid", kidNode, "'\(kid)' is used by two keys; key ids must be unique")
                }
                guard let algNode = k["algorithm"], let algName = r.string(algNode, "\(key).algorithm") else {
                    if k["algorithm"] == nil {
                        r.fail("\(key).algorithm", item, "is required: each key is pinned to one algorithm")
                    }
                    continue
                }
                guard let alg = Algorithm(rawValue: algName) else {
                    r.fail(
                        "\(key).algorithm", algNode,
                        "'\(algName)' is not one of \(Algorithm.allCases.map(\.rawValue).joined(separator: ", "))")
                    continue
                }
                var entry = Key(kid: kid, algorithm: alg)
                if let n = k["public_key"], let v = r.optionalPath(n, "\(key).public_key") { entry.publicKey = v }
                if let n = k["private_key"], let v = r.optionalPath(n, "\(key).private_key") { entry.privateKey = v }
                if let n = k["secret_file"], let v = r.optionalPath(n, "\(key).secret_file") { entry.secretFile = v }
                if alg.isHMAC {
                    if entry.secretFile == nil {
                        r.fail(
                            "\(key).secret_file", item, "is required for \(alg.rawValue) (a file of at least 32 bytes)")
                    }
                    if entry.publicKey != nil || entry.privateKey != nil {
                        r.fail(key, item, "an \(alg.rawValue) key takes secret_file, not public_key/private_key")
                    }
                } else {
                    if entry.publicKey == nil && entry.privateKey == nil {
                        r.fail("\(key).public_key", item, "is required for \(alg.rawValue) (or give private_key)")
                    }
                    if entry.secretFile != nil {
                        r.fail("\(key).secret_file", item, "only HS256/HS384/HS512 keys take a secret_file")
                    }
                }
                auth.keys.append(entry)
            }
        }
    }

    private static func readBackends(_ node: Node, _ r: ConfigReader) -> [String: Backend] {
        var out: [String: Backend] = [:]
        for (name, value) in r.mapping(node, "backends", allowed: []) {
            let key = "backends.\(name)"
            let m = r.mapping(
                value, key,
                allowed: [
                    "endpoints", "token_env", "token_file", "tls", "tls_ca", "connect_timeout_seconds", "health",
                    "launch",
                ])
            var backend = Backend(name: name, endpoints: [])
            if let n = m["endpoints"], let list = r.stringList(n, "\(key).endpoints") {
                for (i, s) in list.enumerated() {
                    if let hp = HostPort(parsing: s), hp.port > 0 {
                        backend.endpoints.append(hp)
                    } else {
                        r.fail("\(key).endpoints[\(i)]", n, "'\(s)' is not host:port")
                    }
                }
                if list.isEmpty { r.fail("\(key).endpoints", n, "must list at least one host:port") }
            } else if m["endpoints"] == nil && m["launch"] == nil {
                r.fail(
                    "\(key).endpoints", value,
                    "is required (for example [\"127.0.0.1:15002\"]), or launch for engines on demand")
            }
            if let n = m["launch"], !r.isNull(n) {
                backend.launch = readLaunch(n, "\(key).launch", r)
                if let e = m["endpoints"] { r.fail("\(key).endpoints", e, "give endpoints or launch, not both") }
                // Each launched engine gets a token of its own, and listens on loopback in plaintext.
                for other in ["token_env", "token_file", "tls", "tls_ca"] where m[other] != nil {
                    r.fail(
                        "\(key).\(other)", m[other],
                        "does not apply to a launch pool: each engine gets its own token and listens on 127.0.0.1")
                }
            }
            if let n = m["token_env"], let v = r.optionalString(n, "\(key).token_env") { backend.tokenEnv = v }
            if let n = m["token_file"], let v = r.optionalPath(n, "\(key).token_file") { backend.tokenFile = v }
            if backend.tokenEnv != nil && backend.tokenFile != nil {
                r.fail(key, value, "give token_env or token_file, not both")
            }
            if let n = m["tls"], let v = r.bool(n, "\(key).tls") { backend.tls = v }
            if let n = m["tls_ca"], let v = r.optionalPath(n, "\(key).tls_ca") { backend.tlsCA = v }
            if let n = m["connect_timeout_seconds"], let v = r.number(n, "\(key).connect_timeout_seconds", min: 0.1) {
                backend.connectTimeoutSeconds = v
            }
            if let n = m["health"], !r.isNull(n) { backend.health = readHealth(n, "\(key).health", r) }
            out[name] = backend
        }
        return out
    }

    private static func readHealth(_ node: Node, _ key: String, _ r: ConfigReader) -> HealthSettings {
        var h = HealthSettings()
        let m = r.mapping(
            node, key,
            allowed: ["interval_seconds", "timeout_seconds", "unhealthy_after", "healthy_after", "move_sessions"])
        if let n = m["interval_seconds"], let v = r.number(n, "\(key).interval_seconds", min: 0.1) {
            h.intervalSeconds = v
        }
        if let n = m["timeout_seconds"], let v = r.number(n, "\(key).timeout_seconds", min: 0.05) {
            h.timeoutSeconds = v
        }
        if let n = m["unhealthy_after"], let v = r.int(n, "\(key).unhealthy_after", min: 1, max: 1000) {
            h.unhealthyAfter = v
        }
        if let n = m["healthy_after"], let v = r.int(n, "\(key).healthy_after", min: 1, max: 1000) {
            h.healthyAfter = v
        }
        if let n = m["move_sessions"], let v = r.bool(n, "\(key).move_sessions") { h.moveSessions = v }
        if h.timeoutSeconds > h.intervalSeconds, let n = m["timeout_seconds"] {
            r.fail(
                "\(key).timeout_seconds", n,
                "\(h.timeoutSeconds) is longer than interval_seconds (\(h.intervalSeconds)): a check would still run when the next starts"
            )
        }
        return h
    }

    private static func readState(_ node: Node, _ r: ConfigReader) -> SharedStateSettings {
        var state = SharedStateSettings()
        let m = r.mapping(node, "state", allowed: ["kind", "redis", "failure_policy"])
        if let n = m["kind"], let v = r.string(n, "state.kind") {
            if let kind = SharedStateSettings.Kind(rawValue: v) {
                state.kind = kind
            } else {
                r.fail("state.kind", n, "'\(v)' is not memory or redis")
            }
        }
        if let n = m["redis"], !r.isNull(n) {
            let rm = r.mapping(
                n, "state.redis",
                allowed: [
                    "addresses", "sentinel", "database", "password_file", "username", "secret_file", "tls",
                    "key_prefix", "timeout_ms", "heartbeat_seconds",
                ])
            if let a = rm["addresses"], let list = r.stringList(a, "state.redis.addresses") {
                var addresses: [HostPort] = []
                for (i, s) in list.enumerated() {
                    if let hp = HostPort(parsing: s), hp.port > 0 {
                        addresses.append(hp)
                    } else {
                        r.fail("state.redis.addresses[\(i)]", a, "'\(s)' is not host:port")
                    }
                }
                if list.isEmpty { r.fail("state.redis.addresses", a, "must list at least one host:port") }
                state.redis.addresses = addresses
            }
            if let v = rm["sentinel"], !r.isNull(v) {
                if rm["addresses"] != nil {
                    r.fail(
                        "state.redis.sentinel", v,
                        "is set together with state.redis.addresses; give one: the sentinels name the master")
                }
                state.redis.sentinel = readSentinel(v, r)
            }
            if let v = rm["database"], let d = r.int(v, "state.redis.database", min: 0, max: 1_000_000) {
                state.redis.database = d
            }
            if let v = rm["password_file"], let p = r.optionalPath(v, "state.redis.password_file") {
                state.redis.passwordFile = p
            }
            if let v = rm["username"], let u = r.optionalString(v, "state.redis.username") {
                if let name = u, name.isEmpty || name.contains(" ") {
                    r.fail("state.redis.username", v, "'\(name)' is not a Redis ACL user name")
                }
                state.redis.username = u
            }
            if let v = rm["secret_file"], let p = r.optionalPath(v, "state.redis.secret_file") {
                state.redis.secretFile = p
            }
            if let v = rm["tls"], let b = r.bool(v, "state.redis.tls") { state.redis.tls = b }
            if let v = rm["key_prefix"], let p = r.string(v, "state.redis.key_prefix") { state.redis.keyPrefix = p }
            if let v = rm["timeout_ms"], let t = r.int(v, "state.redis.timeout_ms", min: 1, max: 60_000) {
                state.redis.timeoutMilliseconds = t
            }
            if let v = rm["heartbeat_seconds"], let t = r.number(v, "state.redis.heartbeat_seconds", min: 0.1) {
                state.redis.heartbeatSeconds = t
            }
        }
        if let n = m["failure_policy"], !r.isNull(n) {
            let fm = r.mapping(n, "state.failure_policy", allowed: ["quotas", "ownership"])
            func policy(_ name: String) -> SharedStateSettings.FailurePolicy? {
                guard let v = fm[name], let s = r.string(v, "state.failure_policy.\(name)") else { return nil }
                guard let p = SharedStateSettings.FailurePolicy(rawValue: s) else {
                    r.fail("state.failure_policy.\(name)", v, "'\(s)' is not fail_open or fail_closed")
                    return nil
                }
                return p
            }
            if let p = policy("quotas") { state.quotasPolicy = p }
            if let p = policy("ownership") { state.ownershipPolicy = p }
        }
        return state
    }

    private static func readSentinel(_ node: Node, _ r: ConfigReader) -> SharedStateSettings.Sentinel {
        var sentinel = SharedStateSettings.Sentinel()
        let m = r.mapping(node, "state.redis.sentinel", allowed: ["addresses", "master_name", "password_file"])
        if let a = m["addresses"], let list = r.stringList(a, "state.redis.sentinel.addresses") {
            for (i, s) in list.enumerated() {
                if let hp = HostPort(parsing: s), hp.port > 0 {
                    sentinel.addresses.append(hp)
                } else {
                    r.fail("state.redis.sentinel.addresses[\(i)]", a, "'\(s)' is not host:port")
                }
            }
            if list.isEmpty { r.fail("state.redis.sentinel.addresses", a, "must list at least one sentinel host:port") }
        } else if m["addresses"] == nil {
            r.fail("state.redis.sentinel.addresses", node, "is required: the sentinels to ask for the master")
        }
        if let v = m["master_name"], let name = r.string(v, "state.redis.sentinel.master_name") {
            if name.isEmpty || name.contains(" ") {
                r.fail(
                    "state.redis.sentinel.master_name", v,
                    "'\(name)' is not a master name (the name in sentinel.conf's 'sentinel monitor')")
            }
            sentinel.masterName = name
        } else if m["master_name"] == nil {
            r.fail(
                "state.redis.sentinel.master_name", node, "is required: the name the sentinels monitor the master under"
            )
        }
        if let v = m["password_file"], let p = r.optionalPath(v, "state.redis.sentinel.password_file") {
            sentinel.passwordFile = p
        }
        return sentinel
    }

    static func readQuotas(_ node: Node, _ key: String, _ r: ConfigReader, over base: QuotaSettings) -> QuotaSettings {
        var q = base
        let m = r.mapping(node, key, allowed: Set(QuotaSettings.keys))
        func int(_ name: String, min: Int = 0) -> Int? { m[name].flatMap { r.int($0, "\(key).\(name)", min: min) } }
        func num(_ name: String) -> Double? { m[name].flatMap { r.number($0, "\(key).\(name)") } }
        if let v = int("max_sessions_per_user", min: 1) { q.maxSessionsPerUser = v }
        if let v = int("max_concurrent_operations_per_session", min: 1) { q.maxConcurrentOperationsPerSession = v }
        if let v = int("max_concurrent_operations_per_team", min: 1) { q.maxConcurrentOperationsPerTeam = v }
        if let v = num("requests_per_second") { q.requestsPerSecond = v }
        if let v = int("request_burst", min: 1) { q.requestBurst = v }
        if let v = num("housekeeping_requests_per_second") { q.housekeepingRequestsPerSecond = v }
        if let v = int("housekeeping_request_burst", min: 1) { q.housekeepingRequestBurst = v }
        if let v = int("max_request_bytes", min: 1) { q.maxRequestBytes = v }
        if let v = int("max_artifact_bytes_per_session") { q.maxArtifactBytesPerSession = v }
        if let v = int("max_result_bytes_per_operation") { q.maxResultBytesPerOperation = v }
        if let v = num("max_operation_seconds") { q.maxOperationSeconds = v }
        if let v = num("session_idle_seconds") { q.sessionIdleSeconds = v }
        if let v = num("max_session_seconds") {
            if v < 0 {
                r.fail(
                    "\(key).max_session_seconds", m["max_session_seconds"],
                    "must be 0 (no limit) or a number of seconds")
            } else {
                q.maxSessionSeconds = v
            }
        }
        return q
    }

    private static func readDefaults(_ node: Node, _ r: ConfigReader, into config: inout SparkgateConfig) {
        let m = r.mapping(node, "defaults", allowed: ["backend", "quotas"])
        if let n = m["backend"], let v = r.nonEmptyString(n, "defaults.backend") { config.defaultBackend = v }
        if let n = m["quotas"] { config.defaultQuotas = readQuotas(n, "defaults.quotas", r, over: QuotaSettings()) }
    }

    private static func readTeams(_ node: Node, _ r: ConfigReader, defaults config: SparkgateConfig) -> [String: Team] {
        var out: [String: Team] = [:]
        if r.isNull(node) { return out }
        for (name, value) in r.mapping(node, "teams", allowed: []) {
            let key = "teams.\(name)"
            var team = Team(backend: config.defaultBackend, quotas: config.defaultQuotas)
            if !r.isNull(value) {
                let m = r.mapping(value, key, allowed: ["backend", "quotas"])
                if let n = m["backend"], let v = r.nonEmptyString(n, "\(key).backend") {
                    team.backend = v
                    // Checked here, at its own line; a backend inherited from defaults is reported as defaults.backend.
                    if !config.backends.isEmpty && config.backends[v] == nil {
                        r.fail(
                            "\(key).backend", n,
                            "'\(v)' is not under backends (have: \(config.backends.keys.sorted().joined(separator: ", ")))"
                        )
                    }
                }
                if let n = m["quotas"] { team.quotas = readQuotas(n, "\(key).quotas", r, over: config.defaultQuotas) }
            }
            out[name] = team
        }
        return out
    }

    private static func readLimits(_ node: Node, _ r: ConfigReader) -> ConnectionLimits {
        var l = ConnectionLimits()
        let m = r.mapping(node, "limits", allowed: Set(ConnectionLimits.keys))
        func seconds(_ name: String, _ target: inout Double) {
            if let n = m[name], let v = r.number(n, "limits.\(name)") { target = v }
        }
        func count(_ name: String, min: Int = 1, max: Int = Int.max, _ target: inout Int) {
            if let n = m[name], let v = r.int(n, "limits.\(name)", min: min, max: max) { target = v }
        }
        seconds("tls_handshake_timeout_seconds", &l.tlsHandshakeTimeoutSeconds)
        seconds("first_request_timeout_seconds", &l.firstRequestTimeoutSeconds)
        seconds("idle_connection_timeout_seconds", &l.idleConnectionTimeoutSeconds)
        seconds("keepalive_interval_seconds", &l.keepaliveIntervalSeconds)
        seconds("keepalive_timeout_seconds", &l.keepaliveTimeoutSeconds)
        seconds("max_connection_age_seconds", &l.maxConnectionAgeSeconds)
        seconds("max_connection_age_grace_seconds", &l.maxConnectionAgeGraceSeconds)
        seconds("refusal_window_seconds", &l.refusalWindowSeconds)
        seconds("backend_keepalive_interval_seconds", &l.backendKeepaliveIntervalSeconds)
        seconds("backend_keepalive_timeout_seconds", &l.backendKeepaliveTimeoutSeconds)
        count("max_connections", &l.maxConnections)
        count("max_connections_per_address", &l.maxConnectionsPerAddress)
        // SETTINGS_MAX_CONCURRENT_STREAMS is a 31-bit value; a handful keeps a PySpark client working.
        count("max_concurrent_streams", min: 4, max: 1 << 20, &l.maxConcurrentStreams)
        count("max_auth_failures_per_connection", &l.maxAuthFailuresPerConnection)
        count("max_refusals_per_connection", &l.maxRefusalsPerConnection)
        count("max_buffered_bytes", min: 1 << 20, &l.maxBufferedBytes)
        count("max_header_list_bytes", min: 8 << 10, max: 16 << 20, &l.maxHeaderListBytes)
        count("max_request_header_bytes", min: 4 << 10, max: 16 << 20, &l.maxRequestHeaderBytes)
        if l.keepaliveIntervalSeconds > 0 && l.keepaliveTimeoutSeconds <= 0 {
            r.fail(
                "limits.keepalive_timeout_seconds", m["keepalive_timeout_seconds"] ?? node,
                "must be above 0 while keepalive_interval_seconds is set")
        }
        if l.maxRequestHeaderBytes > l.maxHeaderListBytes {
            r.fail(
                "limits.max_request_header_bytes", m["max_request_header_bytes"] ?? node,
                "\(l.maxRequestHeaderBytes) is above limits.max_header_list_bytes (\(l.maxHeaderListBytes)), which the peer is told as the hard limit"
            )
        }
        return l
    }

    private static func readSessions(_ node: Node, _ r: ConfigReader, into sessions: inout Sessions) {
        let m = r.mapping(
            node, "sessions",
            allowed: ["reject_foreign_session_ids", "namespace_session_ids", "namespace", "operation_detached_seconds"])
        if let n = m["reject_foreign_session_ids"], let v = r.bool(n, "sessions.reject_foreign_session_ids") {
            sessions.rejectForeignSessionIDs = v
        }
        if let n = m["namespace_session_ids"], let v = r.bool(n, "sessions.namespace_session_ids") {
            sessions.namespaceSessionIDs = v
        }
        if let n = m["namespace"], let v = r.string(n, "sessions.namespace") {
            if UUIDText.parse(v) == nil {
                r.fail("sessions.namespace", n, "'\(v)' is not a UUID")
            } else {
                sessions.namespace = v.lowercased()
            }
        }
        if let n = m["operation_detached_seconds"], let v = r.number(n, "sessions.operation_detached_seconds", min: 1) {
            sessions.operationDetachedSeconds = v
        }
    }

    /// Rules that span keys: references between sections and the TLS/plaintext choice.
    private static func crossCheck(_ config: inout SparkgateConfig, _ top: [String: Node], _ r: ConfigReader) {
        if config.tls == nil && !config.insecurePlaintext && top["tls"].map({ !r.isNull($0) }) != true {
            r.fail(
                "tls", nil,
                "is required: give tls.certificate and tls.private_key, or set insecure_plaintext: true for local development"
            )
        }
        if config.tls != nil && config.insecurePlaintext {
            r.fail("insecure_plaintext", top["insecure_plaintext"], "is true but tls is also set; choose one")
        }
        if config.backends.isEmpty && top["backends"] != nil {
            r.fail("backends", top["backends"], "must name at least one backend")
        } else if config.backends.isEmpty {
            r.fail("backends", nil, "is required: at least one backend with endpoints")
        }
        if !config.backends.isEmpty && config.backends[config.defaultBackend] == nil {
            r.fail(
                "defaults.backend", top["defaults"],
                "'\(config.defaultBackend)' is not under backends (have: \(config.backends.keys.sorted().joined(separator: ", ")))"
            )
        }
        if config.auth.keys.isEmpty && config.auth.jwksFiles.isEmpty && config.auth.jwksURLs.isEmpty {
            r.fail("auth.keys", top["auth"], "no verification keys: give auth.keys, auth.jwks_files or auth.jwks_urls")
        }
        if config.auth.maxTokenBytes + 1024 > config.limits.maxRequestHeaderBytes {
            r.fail(
                "auth.max_token_bytes", top["auth"],
                "\(config.auth.maxTokenBytes) leaves no room under limits.max_request_header_bytes (\(config.limits.maxRequestHeaderBytes)) for the other request headers; raise that limit too"
            )
        }
        checkSharedLaunchPools(config, top, r)
        if !config.admin.listen.isLoopback && config.admin.tokenFile == nil {
            r.fail(
                "admin.listen", top["admin"],
                "\(config.admin.listen) is reachable from other machines; set admin.token_file so the admin API needs a token"
            )
        }
    }

    /// Launch pools that replicas share through Redis put every tenant's route in Redis: it must be closed to
    /// tenants' code (a password), records must be sealed (a shared secret), and engines must be reachable at
    /// an address that names this machine.
    private static func checkSharedLaunchPools(_ config: SparkgateConfig, _ top: [String: Node], _ r: ConfigReader) {
        guard config.state.kind == .redis else { return }
        let pools = config.backends.values.filter { $0.launch != nil }.sorted { $0.name < $1.name }
        guard let first = pools.first else { return }
        if config.state.redis.passwordFile == nil {
            r.fail(
                "state.redis.password_file", top["state"],
                "is required with launch pools (backends.\(first.name).launch) and shared state: Redis holds every engine's route, and an engine's code can reach it; give Redis a password (requirepass or an ACL user) and its file here"
            )
        }
        if config.state.redis.secretFile == nil {
            r.fail(
                "state.redis.secret_file", top["state"],
                "is required with launch pools (backends.\(first.name).launch) and shared state: a file of at least 32 random bytes every replica shares (openssl rand -hex 32); engine tokens are derived from it and every record is sealed with it"
            )
        }
        for backend in pools {
            let host = backend.launch?.advertiseHost
            if host == nil {
                r.fail(
                    "backends.\(backend.name).launch.advertise_host", top["backends"],
                    "is required with shared state: the address other replicas reach this replica's engines at (\"$POD_IP\", or 127.0.0.1 when every replica runs on this host)"
                )
            } else if let host, HostPort.isUnspecified(host) {
                r.fail(
                    "backends.\(backend.name).launch.advertise_host", top["backends"],
                    "'\(host)' names no machine: another replica would connect to itself; give this replica's address")
            }
        }
    }
}
