/// Every key of the configuration file, in one table: its type, default, whether a reload applies it, and what
/// it does. docs/configuration.md's tables are this table rendered (`sparkgate config keys` prints them, and
/// `ConfigurationReferenceTests` holds the page to it); the parser accepts exactly these keys, and the reload's
/// restart check covers exactly the `restart` ones. A new key is a row here plus its handling.
public enum ConfigurationKeys {
    public struct Section: Sendable {
        public var title: String
        public var keys: [ConfigurationKey]
    }

    /// The keys of every section, in the reference's order.
    public static var all: [ConfigurationKey] { sections.flatMap(\.keys) }

    /// The keys a running gateway reads once: a reload that changes one is refused.
    public static var restartOnly: [String] { all.filter { $0.reload == .restart }.map(\.name) }

    /// One section as the reference's Markdown table.
    public static func markdown(_ section: Section) -> String {
        (["| key | type | default | reload | what it does |", "|---|---|---|---|---|"]
            + section.keys.map(\.markdownRow)).joined(separator: "\n")
    }

    public static let sections: [Section] = [
        Section(
            title: "Listener and TLS",
            keys: [
                ConfigurationKey(
                    "listen", type: "host:port", default: "`0.0.0.0:15443`", reload: .restart,
                    "where clients connect"),
                ConfigurationKey(
                    "tls", type: "mapping", default: "— (required unless `insecure_plaintext`)", reload: .yes,
                    "the server certificate; new connections get a reloaded one"),
                ConfigurationKey(
                    "tls.certificate", type: "path", default: "required", reload: .yes,
                    "PEM certificate chain"),
                ConfigurationKey(
                    "tls.private_key", type: "path", default: "required", reload: .yes,
                    "PEM private key of the certificate (keep it 0600: config check warns otherwise)"),
                ConfigurationKey(
                    "tls.client_ca", type: "path", default: "none", reload: .yes,
                    "PEM bundle: when set, clients must present a certificate it signed (mutual TLS)"),
                ConfigurationKey(
                    "insecure_plaintext", type: "bool", default: "`false`", reload: .yes,
                    "serve h2c without TLS (local development only; exclusive with `tls`)"),
                ConfigurationKey(
                    "max_message_bytes", type: "int", default: "`134217728`", reload: .yes,
                    "the largest gRPC message either side may send (Spark's default, 128 MiB)"),
                ConfigurationKey(
                    "audit_log", type: "`stdout`, `off` or a path", default: "`stdout`", reload: .yes,
                    "one JSON line per RPC"),
                ConfigurationKey(
                    "shutdown_grace_seconds", type: "seconds", default: "`30`", reload: .yes,
                    "how long a SIGTERM lets calls and their running operations finish"),
            ]),
        Section(
            title: "Admin API",
            keys: [
                ConfigurationKey(
                    "admin", type: "mapping", default: "", reload: .yes,
                    "the admin listener (`/metrics`, `/healthz`, `/readyz`, `/v1/...`)"),
                ConfigurationKey(
                    "admin.listen", type: "host:port", default: "`127.0.0.1:9464`", reload: .restart,
                    "off loopback it requires `token_file`"),
                ConfigurationKey(
                    "admin.token_file", type: "path", default: "none", reload: .yes,
                    "every path but `/healthz` accepts `Authorization: Bearer <file contents>`"),
                ConfigurationKey(
                    "admin.read_token_file", type: "path", default: "none", reload: .yes,
                    "a second token that opens GETs only (`/metrics`, `/v1/sessions`, `/v1/engines`): for Prometheus and dashboards"
                ),
                ConfigurationKey(
                    "admin.allow_unauthenticated_reads", type: "bool", default: "`false`", reload: .yes,
                    "without a token, GETs answer 401 unless this is true (any local process, a tenant's engine code included, reaches the loopback port)"
                ),
                ConfigurationKey(
                    "admin.allow_unauthenticated_mutations", type: "bool", default: "`false`", reload: .yes,
                    "without a token, reload and kill answer 403 unless this is true"),
                ConfigurationKey(
                    "admin.public_readiness", type: "bool", default: "`false`", reload: .yes,
                    "`GET /readyz` without the token (Kubernetes probes)"),
                ConfigurationKey(
                    "admin.max_connections", type: "int", default: "`64`", reload: .restart,
                    "connections the admin listener holds at once; more are closed at accept"),
            ]),
        Section(
            title: "Authentication",
            keys: [
                ConfigurationKey(
                    "auth", type: "mapping", default: "", reload: .yes,
                    "how tokens are verified"),
                ConfigurationKey(
                    "auth.issuer", type: "string", default: "`sparkgate-dev`", reload: .yes,
                    "required `iss`"),
                ConfigurationKey(
                    "auth.audience", type: "string", default: "`spark-connect`", reload: .yes,
                    "required in `aud`"),
                ConfigurationKey(
                    "auth.leeway_seconds", type: "seconds", default: "`30`", reload: .yes,
                    "clock skew allowed on `exp`, `nbf` and `iat`"),
                ConfigurationKey(
                    "auth.max_token_bytes", type: "int", default: "`8192`", reload: .yes,
                    "a larger token is UNAUTHENTICATED by name"),
                ConfigurationKey(
                    "auth.user_claim", type: "string", default: "`sub`", reload: .yes,
                    "the claim that names the user"),
                ConfigurationKey(
                    "auth.team_claim", type: "string", default: "`team`", reload: .yes,
                    "the claim that names the team"),
                ConfigurationKey(
                    "auth.groups_claim", type: "string", default: "`groups`", reload: .yes,
                    "the claim that lists groups (audited, not enforced)"),
                ConfigurationKey(
                    "auth.keys", type: "list", default: "`[]`", reload: .yes,
                    "verification keys, each pinned to one algorithm"),
                ConfigurationKey(
                    "auth.keys[].kid", type: "string", default: "required", reload: .yes,
                    "the `kid` a token must name"),
                ConfigurationKey(
                    "auth.keys[].algorithm",
                    type: "`ES256`, `ES384`, `EdDSA`, `RS256/384/512`, `PS256/384/512`, `HS256/384/512`",
                    default: "required", reload: .yes,
                    "the only algorithm this key verifies"),
                ConfigurationKey(
                    "auth.keys[].public_key", type: "path", default: "none", reload: .yes,
                    "PEM public key (asymmetric algorithms)"),
                ConfigurationKey(
                    "auth.keys[].private_key", type: "path", default: "none", reload: .yes,
                    "PEM private key, read only by `sparkgate token issue`"),
                ConfigurationKey(
                    "auth.keys[].secret_file", type: "path", default: "none", reload: .yes,
                    "HMAC secret of at least 32 bytes (HS* only)"),
                ConfigurationKey(
                    "auth.jwks_files", type: "list of paths", default: "`[]`", reload: .yes,
                    "JWKS documents on disk"),
                ConfigurationKey(
                    "auth.jwks_urls", type: "list", default: "`[]`", reload: .yes,
                    "`https://` JWKS URLs, fetched, cached, refreshed, and fetched again on an unknown `kid` (rate-limited)"
                ),
                ConfigurationKey(
                    "auth.jwks_urls[].url", type: "URL", default: "required", reload: .yes,
                    "a URL written as a mapping, to allow plaintext"),
                ConfigurationKey(
                    "auth.jwks_urls[].allow_plaintext", type: "bool", default: "`false`", reload: .yes,
                    "accept `http://` for a development key server"),
                ConfigurationKey(
                    "auth.jwks_refresh_seconds", type: "seconds", default: "`300`", reload: .yes,
                    "how often JWKS URLs are fetched"),
                ConfigurationKey(
                    "auth.revoked_token_ids_file", type: "path", default: "none", reload: .yes,
                    "one revoked `jti` per line"),
            ]),
        Section(
            title: "Backends",
            keys: [
                ConfigurationKey(
                    "backends", type: "mapping of names", default: "required", reload: .yes,
                    "the Spark Connect servers teams use"),
                ConfigurationKey(
                    "backends.<name>.endpoints", type: "list of host:port", default: "required without `launch`",
                    reload: .yes,
                    "the backend's servers; a session stays on the first healthy one in its rendezvous order"),
                ConfigurationKey(
                    "backends.<name>.token_env", type: "string", default: "none", reload: .yes,
                    "environment variable holding the token Sparkgate presents (`authorization: Bearer`)"),
                ConfigurationKey(
                    "backends.<name>.token_file", type: "path", default: "none", reload: .yes,
                    "file holding that token (exclusive with `token_env`)"),
                ConfigurationKey(
                    "backends.<name>.tls", type: "bool", default: "`false`", reload: .yes,
                    "TLS toward the backend"),
                ConfigurationKey(
                    "backends.<name>.tls_ca", type: "path", default: "system roots", reload: .yes,
                    "PEM bundle the backend's certificate must chain to"),
                ConfigurationKey(
                    "backends.<name>.connect_timeout_seconds", type: "seconds", default: "`5`", reload: .yes,
                    "a backend connection not up by then is UNAVAILABLE"),
                ConfigurationKey(
                    "backends.<name>.health", type: "mapping", default: "", reload: .yes,
                    "active health checks (a real Config call with the backend token)"),
                ConfigurationKey(
                    "backends.<name>.health.interval_seconds", type: "seconds", default: "`5`", reload: .yes,
                    "between checks of each endpoint"),
                ConfigurationKey(
                    "backends.<name>.health.timeout_seconds", type: "seconds", default: "`2`", reload: .yes,
                    "a check without an answer by then failed (at most the interval)"),
                ConfigurationKey(
                    "backends.<name>.health.unhealthy_after", type: "int", default: "`3`", reload: .yes,
                    "consecutive failures before an endpoint takes no new sessions"),
                ConfigurationKey(
                    "backends.<name>.health.healthy_after", type: "int", default: "`1`", reload: .yes,
                    "consecutive successes before it takes them again"),
                ConfigurationKey(
                    "backends.<name>.health.move_sessions", type: "bool", default: "`false`", reload: .yes,
                    "move a failed endpoint's sessions instead of refusing them (their state is lost)"),
                ConfigurationKey(
                    "backends.<name>.launch", type: "mapping", default: "none", reload: .newEngines,
                    "engines launched on demand instead of `endpoints`"),
                ConfigurationKey(
                    "backends.<name>.launch.command", type: "list of strings", default: "required", reload: .newEngines,
                    "the engine's argv, no shell; placeholders `{port}` (required) `{host}` `{token}` `{token_file}` `{team}` `{user}` `{engine_id}` `{work_dir}`, `{{`/`}}` for braces"
                ),
                ConfigurationKey(
                    "backends.<name>.launch.environment", type: "mapping", default: "`{}`", reload: .newEngines,
                    "added to what the engine inherits (`PATH`, `HOME`, `LANG`, `LC_ALL`, `JAVA_HOME`, `TMPDIR`, `USER`, `LOGNAME`, `TZ`); placeholders allowed"
                ),
                ConfigurationKey(
                    "backends.<name>.launch.share", type: "`team`, `user` or `server`", default: "`team`",
                    reload: .newEngines,
                    "who shares one engine"),
                ConfigurationKey(
                    "backends.<name>.launch.ports", type: "range", default: "`20000-20999`", reload: .newEngines,
                    "ports engines listen on, rotating"),
                ConfigurationKey(
                    "backends.<name>.launch.work_dir", type: "path",
                    default: "a fresh `sparkgate-engines-XXXXXX` in the system temp directory", reload: .newEngines,
                    "the base of each engine's private directory (token file) and of its log; created by the gateway (0711) and refused if it exists with another owner or under a directory another user can change"
                ),
                ConfigurationKey(
                    "backends.<name>.launch.startup_timeout_seconds", type: "seconds", default: "`120`",
                    reload: .newEngines,
                    "an engine not ready by then is stopped; its callers get UNAVAILABLE with the reason and where its log is kept"
                ),
                ConfigurationKey(
                    "backends.<name>.launch.log_tail_in_errors", type: "bool", default: "`false`", reload: .newEngines,
                    "also give waiting callers the last lines of a failed engine's log, with its token and credential-shaped text redacted"
                ),
                ConfigurationKey(
                    "backends.<name>.launch.idle_seconds", type: "seconds", default: "`600`", reload: .yes,
                    "an engine stops this long after its last session (over every replica)"),
                ConfigurationKey(
                    "backends.<name>.launch.stop_grace_seconds", type: "seconds", default: "`30`", reload: .yes,
                    "SIGTERM, then SIGKILL this much later"),
                ConfigurationKey(
                    "backends.<name>.launch.max_engines", type: "int", default: "`8`", reload: .yes,
                    "engines of this backend (over every replica with shared state)"),
                ConfigurationKey(
                    "backends.<name>.launch.max_engines_per_team", type: "int", default: "`max_engines`", reload: .yes,
                    "engines of one team"),
                ConfigurationKey(
                    "backends.<name>.launch.run_as", type: "OS user name or template",
                    default: "none (the gateway's user)", reload: .newEngines,
                    "each engine as this user: `sg-{team}` with `share: team`, `sg-{team}_{user}` with `share: user`, a fixed name with `share: server` (needs root or CAP_SETUID/CAP_SETGID); one that can give two tenants one user, root, or the gateway's own user is refused"
                ),
                ConfigurationKey(
                    "backends.<name>.launch.allow_shared_run_as", type: "bool", default: "`false`", reload: .newEngines,
                    "accept a `run_as` that gives several share keys one OS user (their engines can then read each other's tokens and files)"
                ),
                ConfigurationKey(
                    "backends.<name>.launch.advertise_host", type: "host, or `$VARIABLE`",
                    default: "`127.0.0.1`; required with shared state", reload: .newEngines,
                    "with shared state, where other replicas reach this replica's engines (`{host}`); never `0.0.0.0`"),
                ConfigurationKey(
                    "backends.<name>.launch.warm_engines", type: "int", default: "`0`", reload: .yes,
                    "engines started ahead for any tenant; needs `run_as` unset, fixed with `share: server`, or `allow_shared_run_as`, and no `{team}`/`{user}` in the command"
                ),
                ConfigurationKey(
                    "backends.<name>.launch.warm_engines_per_team", type: "int", default: "`0`", reload: .yes,
                    "engines started ahead for each team listed under `teams` with this backend, each as the team's own `run_as` user; only that team takes them"
                ),
            ]),
        Section(
            title: "Teams and quotas",
            keys: [
                ConfigurationKey(
                    "defaults", type: "mapping", default: "", reload: .yes,
                    "what teams get unless they say otherwise"),
                ConfigurationKey(
                    "defaults.backend", type: "backend name", default: "`local`", reload: .yes,
                    "the backend of teams that name none"),
                ConfigurationKey(
                    "defaults.quotas", type: "mapping", default: "", reload: .yes,
                    "the quotas below"),
                ConfigurationKey(
                    "defaults.quotas.max_sessions_per_user", type: "int", default: "`8`", reload: .yes,
                    "open sessions per user"),
                ConfigurationKey(
                    "defaults.quotas.max_concurrent_operations_per_session", type: "int", default: "`4`", reload: .yes,
                    "running operations per session"),
                ConfigurationKey(
                    "defaults.quotas.max_concurrent_operations_per_team", type: "int", default: "`64`", reload: .yes,
                    "running operations per team"),
                ConfigurationKey(
                    "defaults.quotas.requests_per_second", type: "number", default: "`50`", reload: .yes,
                    "per user, token bucket (0 = unlimited)"),
                ConfigurationKey(
                    "defaults.quotas.request_burst", type: "int", default: "`100`", reload: .yes,
                    "the bucket's size"),
                ConfigurationKey(
                    "defaults.quotas.housekeeping_requests_per_second", type: "number", default: "`500`", reload: .yes,
                    "ReattachExecute, ReleaseExecute, ReleaseSession, Interrupt: a bucket of their own"),
                ConfigurationKey(
                    "defaults.quotas.housekeeping_request_burst", type: "int", default: "`1000`", reload: .yes,
                    "its size"),
                ConfigurationKey(
                    "defaults.quotas.max_request_bytes", type: "int", default: "`134217728`", reload: .yes,
                    "one request message"),
                ConfigurationKey(
                    "defaults.quotas.max_artifact_bytes_per_session", type: "int", default: "`1073741824`",
                    reload: .yes,
                    "AddArtifacts bytes per session (per replica)"),
                ConfigurationKey(
                    "defaults.quotas.max_result_bytes_per_operation", type: "int", default: "`0` (unlimited)",
                    reload: .yes,
                    "past it the operation is interrupted"),
                ConfigurationKey(
                    "defaults.quotas.max_operation_seconds", type: "seconds", default: "`0` (unlimited)", reload: .yes,
                    "past it the operation is interrupted"),
                ConfigurationKey(
                    "defaults.quotas.session_idle_seconds", type: "seconds", default: "`3600`", reload: .yes,
                    "then Sparkgate releases the session on the backend"),
                ConfigurationKey(
                    "defaults.quotas.max_session_seconds", type: "seconds", default: "`0` (no limit)",
                    reload: .newSessions,
                    #"a session older than this is released on the backend however busy (its running operations end); its calls, and its next call under the same id for an hour, get FAILED_PRECONDITION naming the limit and its age; `sparkgate_sessions_expired_total{reason="lifetime"}`"#
                ),
                ConfigurationKey(
                    "teams", type: "mapping of names", default: "`{}`", reload: .yes,
                    "the teams tokens may name"),
                ConfigurationKey(
                    "teams.<name>.backend", type: "backend name", default: "`defaults.backend`", reload: .yes,
                    "the team's backend"),
                ConfigurationKey(
                    "teams.<name>.quotas", type: "mapping", default: "`defaults.quotas`", reload: .yes,
                    "overrides, key by key"),
                ConfigurationKey(
                    "allow_unknown_teams", type: "bool", default: "`false`", reload: .yes,
                    "a token naming an unlisted team gets the defaults instead of PERMISSION_DENIED"),
            ]),
        Section(
            title: "Sessions and policy",
            keys: [
                ConfigurationKey(
                    "sessions", type: "mapping", default: "", reload: .yes,
                    ""),
                ConfigurationKey(
                    "sessions.reject_foreign_session_ids", type: "bool", default: "`true`", reload: .yes,
                    "a session id in use by another user is PERMISSION_DENIED"),
                ConfigurationKey(
                    "sessions.namespace_session_ids", type: "bool", default: "`true`", reload: .yes,
                    "the backend sees UUIDv5(namespace, team/user/session) instead of the client's id"),
                ConfigurationKey(
                    "sessions.namespace", type: "UUID", default: "`6f0f1bd3-5f5a-4b8e-9a51-8a6a3c1e2d47`", reload: .yes,
                    "that namespace: replicas sharing a backend must share it"),
                ConfigurationKey(
                    "sessions.operation_detached_seconds", type: "seconds", default: "`300`", reload: .yes,
                    "an operation with no stream attached this long is forgotten (Spark's own default)"),
                ConfigurationKey(
                    "config_policy", type: "mapping", default: "", reload: .yes,
                    ""),
                ConfigurationKey(
                    "config_policy.deny_keys", type: "list of globs", default: "`ConfigPolicy.defaultDenied`",
                    reload: .yes,
                    "keys no client may set, unset or read, by the Config RPC or SQL (replaces the default list)"),
            ]),
        Section(
            title: "Limits",
            keys: [
                ConfigurationKey(
                    "limits", type: "mapping", default: "", reload: .newConnections,
                    ""),
                ConfigurationKey(
                    "limits.tls_handshake_timeout_seconds", type: "seconds", default: "`10`", reload: .yes,
                    "a handshake not done by then closes the connection"),
                ConfigurationKey(
                    "limits.first_request_timeout_seconds", type: "seconds", default: "`10`", reload: .yes,
                    "from accept to the first request head"),
                ConfigurationKey(
                    "limits.idle_connection_timeout_seconds", type: "seconds", default: "`300`", reload: .yes,
                    "no open stream this long: GOAWAY"),
                ConfigurationKey(
                    "limits.keepalive_interval_seconds", type: "seconds", default: "`60`", reload: .yes,
                    "a silent peer is pinged"),
                ConfigurationKey(
                    "limits.keepalive_timeout_seconds", type: "seconds", default: "`20`", reload: .yes,
                    "an unanswered ping closes the connection"),
                ConfigurationKey(
                    "limits.max_connection_age_seconds", type: "seconds", default: "`0`", reload: .yes,
                    "then a graceful GOAWAY"),
                ConfigurationKey(
                    "limits.max_connection_age_grace_seconds", type: "seconds", default: "`30`", reload: .yes,
                    "what an aged connection gets to finish"),
                ConfigurationKey(
                    "limits.max_connections", type: "int", default: "`10000`", reload: .yes,
                    "closed at accept past it"),
                ConfigurationKey(
                    "limits.max_connections_per_address", type: "int", default: "`256`", reload: .yes,
                    "the same, per client address"),
                ConfigurationKey(
                    "limits.max_concurrent_streams", type: "int", default: "`256`", reload: .yes,
                    "advertised in SETTINGS"),
                ConfigurationKey(
                    "limits.max_auth_failures_per_connection", type: "int", default: "`20`", reload: .yes,
                    "refused tokens before GOAWAY(ENHANCE_YOUR_CALM)"),
                ConfigurationKey(
                    "limits.max_refusals_per_connection", type: "int", default: "`200`", reload: .yes,
                    "Sparkgate's own refusals within the window before GOAWAY"),
                ConfigurationKey(
                    "limits.refusal_window_seconds", type: "seconds", default: "`30`", reload: .yes,
                    "that window"),
                ConfigurationKey(
                    "limits.max_buffered_bytes", type: "int", default: "`1073741824`", reload: .yes,
                    "bytes all calls hold; new calls get RESOURCE_EXHAUSTED past it"),
                ConfigurationKey(
                    "limits.max_header_list_bytes", type: "int", default: "`262144`", reload: .yes,
                    "SETTINGS_MAX_HEADER_LIST_SIZE"),
                ConfigurationKey(
                    "limits.max_request_header_bytes", type: "int", default: "`65536`", reload: .yes,
                    "a larger request head is refused on its stream"),
                ConfigurationKey(
                    "limits.backend_keepalive_interval_seconds", type: "seconds", default: "`30`", reload: .yes,
                    "backend connections are pinged"),
                ConfigurationKey(
                    "limits.backend_keepalive_timeout_seconds", type: "seconds", default: "`10`", reload: .yes,
                    "an unanswered backend ping closes it, ending its calls"),
            ]),
        Section(
            title: "Shared state (several replicas)",
            keys: [
                ConfigurationKey(
                    "state", type: "mapping", default: "", reload: .restart,
                    ""),
                ConfigurationKey(
                    "state.kind", type: "`memory` or `redis`", default: "`memory`", reload: .restart,
                    "where quotas, ownership, placement and launch pools are decided"),
                ConfigurationKey(
                    "state.redis", type: "mapping", default: "", reload: .restart,
                    ""),
                ConfigurationKey(
                    "state.redis.addresses", type: "list of host:port", default: #"`["127.0.0.1:6379"]`"#,
                    reload: .restart,
                    "tried in order (exclusive with `sentinel`)"),
                ConfigurationKey(
                    "state.redis.sentinel", type: "mapping", default: "none", reload: .restart,
                    "follow the master through Redis Sentinel"),
                ConfigurationKey(
                    "state.redis.sentinel.addresses", type: "list of host:port", default: "required", reload: .restart,
                    "the sentinels"),
                ConfigurationKey(
                    "state.redis.sentinel.master_name", type: "string", default: "required", reload: .restart,
                    "the name in `sentinel monitor`"),
                ConfigurationKey(
                    "state.redis.sentinel.password_file", type: "path", default: "none", reload: .restart,
                    "the sentinels' own password"),
                ConfigurationKey(
                    "state.redis.database", type: "int", default: "`0`", reload: .restart,
                    "SELECT"),
                ConfigurationKey(
                    "state.redis.password_file", type: "path", default: "none; required with launch pools",
                    reload: .restart,
                    "AUTH (Redis holds every engine's route: a launch pool's code must not reach it)"),
                ConfigurationKey(
                    "state.redis.username", type: "string", default: "none", reload: .restart,
                    "an ACL user: `AUTH <username> <password>`"),
                ConfigurationKey(
                    "state.redis.secret_file", type: "path", default: "none; required with launch pools",
                    reload: .restart,
                    "at least 32 bytes every replica shares: engine tokens are derived from it (Redis holds none), and every record and message is sealed with it; one that does not verify is refused and counted in `sparkgate_state_records_rejected_total`"
                ),
                ConfigurationKey(
                    "state.redis.tls", type: "bool", default: "`false`", reload: .restart,
                    "TLS toward Redis, with the system's roots"),
                ConfigurationKey(
                    "state.redis.key_prefix", type: "string", default: "`sparkgate:`", reload: .restart,
                    "several gateways may share one Redis"),
                ConfigurationKey(
                    "state.redis.timeout_ms", type: "int", default: "`200`", reload: .restart,
                    "every step: connect, TLS with AUTH, SELECT, each command"),
                ConfigurationKey(
                    "state.redis.heartbeat_seconds", type: "seconds", default: "`15`", reload: .restart,
                    "renewals and the check for data Redis lost; records expire 4 heartbeats after their replica's last"
                ),
                ConfigurationKey(
                    "state.failure_policy", type: "mapping", default: "", reload: .restart,
                    "what happens while Redis does not answer"),
                ConfigurationKey(
                    "state.failure_policy.quotas", type: "`fail_open` or `fail_closed`", default: "`fail_open`",
                    reload: .restart,
                    "open: limits per replica; closed: every call UNAVAILABLE"),
                ConfigurationKey(
                    "state.failure_policy.ownership", type: "`fail_open` or `fail_closed`", default: "`fail_closed`",
                    reload: .restart,
                    "closed: a session this replica does not hold is UNAVAILABLE"),
            ]),
        Section(
            title: "Tracing",
            keys: [
                ConfigurationKey(
                    "tracing", type: "mapping", default: "", reload: .restart,
                    "OpenTelemetry traces, off unless `otlp_endpoint` is set"),
                ConfigurationKey(
                    "tracing.otlp_endpoint", type: "URL", default: "none", reload: .restart,
                    "the OTLP/HTTP collector (`http://host:4318`)"),
                ConfigurationKey(
                    "tracing.sample_ratio", type: "0–1", default: "`0.01`", reload: .restart,
                    "the share of new traces recorded (a client's sampled `traceparent` is followed)"),
                ConfigurationKey(
                    "tracing.service_name", type: "string", default: "`sparkgate`", reload: .restart,
                    "`service.name` of the spans"),
            ]),
    ]
}

/// One configuration key, as the reference documents it.
public struct ConfigurationKey: Sendable, Equatable {
    /// When a changed value takes effect.
    public enum Reload: String, Sendable {
        case yes = "yes"
        case newConnections = "yes (new connections)"
        case newSessions = "yes (new sessions)"
        case newEngines = "new engines"
        case restart = "restart"
    }

    /// The key's path: `limits.max_streams_per_connection`, `backends.<name>.endpoints`, `auth.keys[].kid`.
    public var name: String
    /// Its type, as the reference words it (Markdown).
    public var type: String
    /// Its default (Markdown); empty for a section without a value of its own.
    public var defaultValue: String
    public var reload: Reload
    /// What it does (Markdown).
    public var summary: String

    public init(_ name: String, type: String, default defaultValue: String, reload: Reload, _ summary: String) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.reload = reload
        self.summary = summary
    }

    /// The key's row in the reference's table.
    public var markdownRow: String {
        "|"
            + ["`\(name)`", type, defaultValue, reload.rawValue, summary].map { $0.isEmpty ? " " : " \($0) " }
            .joined(separator: "|") + "|"
    }
}
