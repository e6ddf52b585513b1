/// A backend stream to open: the endpoint, how to reach it and what to present there.
public struct BackendStreamRequest: Sendable, Equatable {
    /// The configured backend (`backends.<name>`).
    public var backend: String
    public var address: HostPort
    public var tls: Bool
    /// The bearer token the backend expects: the backend's own, or a launched engine's.
    public var token: String?
    public var connectTimeoutSeconds: Double

    public init(backend: String, address: HostPort, tls: Bool, token: String?, connectTimeoutSeconds: Double) {
        self.backend = backend
        self.address = address
        self.tls = tls
        self.token = token
        self.connectTimeoutSeconds = connectTimeoutSeconds
    }
}
