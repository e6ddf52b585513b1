/// A connection to an endpoint that failed, counted against the endpoint's health as a failed check is.
public struct EndpointFailure: Sendable, Equatable {
    public var backend: String
    public var endpoint: HostPort
    public var reason: String
    public var settings: HealthSettings

    public init(backend: String, endpoint: HostPort, reason: String, settings: HealthSettings) {
        self.backend = backend
        self.endpoint = endpoint
        self.reason = reason
        self.settings = settings
    }
}
