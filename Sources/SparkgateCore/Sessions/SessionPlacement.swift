/// Where a session lives: the endpoint its state is on (a backend with several endpoints) and the launched
/// engine (a launch pool). Fixed by the session's first call and shared by every replica, so a session is
/// served where its temporary views and cached data are, whichever replica a call reaches.
public struct SessionPlacement: Sendable, Equatable {
    public var endpoint: HostPort?
    public var engine: String?

    public init(endpoint: HostPort? = nil, engine: String? = nil) {
        self.endpoint = endpoint
        self.engine = engine
    }

    /// From the shared state's text form ('' for nothing).
    public init(endpoint: String, engine: String) {
        self.endpoint = endpoint.isEmpty ? nil : HostPort(parsing: endpoint)
        self.engine = engine.isEmpty ? nil : engine
    }

    public var isEmpty: Bool { endpoint == nil && engine == nil }
    public var endpointText: String { endpoint?.description ?? "" }
    public var engineText: String { engine ?? "" }
}
