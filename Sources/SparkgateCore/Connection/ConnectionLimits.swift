/// The `limits` section: what bounds one client connection and the gateway as a whole. Timeouts are in
/// seconds; 0 switches a timeout off.
public struct ConnectionLimits: Sendable, Equatable {
    public var tlsHandshakeTimeoutSeconds = 10.0
    /// From accept to the first complete request head.
    public var firstRequestTimeoutSeconds = 10.0
    /// A connection with no open stream for this long gets GOAWAY and is closed.
    public var idleConnectionTimeoutSeconds = 300.0
    /// A PING goes out after this long without a frame from the peer...
    public var keepaliveIntervalSeconds = 60.0
    /// ...and a peer that does not answer it within this long is closed.
    public var keepaliveTimeoutSeconds = 20.0
    /// Past this age a connection gets a graceful GOAWAY (0 = unlimited).
    public var maxConnectionAgeSeconds = 0.0
    /// How long a connection that got a GOAWAY for its age may finish its streams before it is closed.
    public var maxConnectionAgeGraceSeconds = 30.0
    public var maxConnections = 10_000
    public var maxConnectionsPerAddress = 256
    /// Advertised in SETTINGS_MAX_CONCURRENT_STREAMS.
    public var maxConcurrentStreams = 256
    /// Refused tokens on one connection before it gets GOAWAY.
    public var maxAuthFailuresPerConnection = 20
    /// Calls Sparkgate itself refuses on one connection within `refusalWindowSeconds` before it gets GOAWAY:
    /// stream churn through refusals costs as much as churn through resets.
    public var maxRefusalsPerConnection = 200
    public var refusalWindowSeconds = 30.0
    /// Bytes all calls together may hold in the gateway; past it, new calls get RESOURCE_EXHAUSTED.
    public var maxBufferedBytes = 1 << 30
    /// SETTINGS_MAX_HEADER_LIST_SIZE: a header block above it cannot be decoded at all and costs the
    /// connection. Blocks under it but over `maxRequestHeaderBytes`, or with a token over
    /// `auth.max_token_bytes`, are refused on their stream with a status that names the limit.
    public var maxHeaderListBytes = 256 << 10
    public var maxRequestHeaderBytes = 64 << 10
    /// Backend connections: a PING after this long without a frame, and closed when it goes unanswered.
    public var backendKeepaliveIntervalSeconds = 30.0
    public var backendKeepaliveTimeoutSeconds = 10.0

    public init() {}

    /// What bounds a backend connection: only keepalive (Sparkgate opens it, so no handshake, first-request,
    /// idle or age limit applies).
    public var backendConnection: ConnectionLimits {
        var l = ConnectionLimits()
        l.tlsHandshakeTimeoutSeconds = 0
        l.firstRequestTimeoutSeconds = 0
        l.idleConnectionTimeoutSeconds = 0
        l.maxConnectionAgeSeconds = 0
        l.keepaliveIntervalSeconds = backendKeepaliveIntervalSeconds
        l.keepaliveTimeoutSeconds = backendKeepaliveTimeoutSeconds
        return l
    }

    /// YAML keys under `limits`.
    public static let keys = [
        "tls_handshake_timeout_seconds", "first_request_timeout_seconds", "idle_connection_timeout_seconds",
        "keepalive_interval_seconds",
        "keepalive_timeout_seconds", "max_connection_age_seconds", "max_connection_age_grace_seconds",
        "max_connections",
        "max_connections_per_address", "max_concurrent_streams", "max_auth_failures_per_connection",
        "max_refusals_per_connection",
        "refusal_window_seconds", "max_buffered_bytes", "max_header_list_bytes", "max_request_header_bytes",
        "backend_keepalive_interval_seconds", "backend_keepalive_timeout_seconds",
    ]
}

/// Why Sparkgate closed or refused something on a limit: the `limit` label of `sparkgate_limit_events_total`.
public enum LimitEvent: String, Sendable, CaseIterable {
    case handshakeTimeout = "handshake_timeout"
    case firstRequestTimeout = "first_request_timeout"
    case idleTimeout = "idle_timeout"
    case keepaliveTimeout = "keepalive_timeout"
    case connectionAge = "max_connection_age"
    case maxConnections = "max_connections"
    case maxConnectionsPerAddress = "max_connections_per_address"
    case authFailures = "auth_failures"
    case refusals = "refused_calls"
    case bufferedBytes = "buffered_bytes"
    case headerBytes = "header_bytes"
    case backendKeepaliveTimeout = "backend_keepalive_timeout"
    /// A plaintext HTTP/2 client on the TLS port (told to add `;use_ssl=true`).
    case plaintextToTLSPort = "plaintext_to_tls_port"
}
