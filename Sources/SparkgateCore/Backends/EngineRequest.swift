/// What a launch pool is asked for: the engine of a share key, launched if needed.
public struct EngineRequest: Sendable, Equatable {
    public var key: EngineShareKey
    public var settings: LaunchSettings
    /// The engine the session was placed on, if it was: the session's state lives there or nowhere.
    public var bound: String?

    public init(key: EngineShareKey, settings: LaunchSettings, bound: String?) {
        self.key = key
        self.settings = settings
        self.bound = bound
    }
}

/// An engine a launch pool gave a call.
public struct ReadyEngine: Sendable, Equatable {
    public var id: String
    public var address: HostPort
    /// The token the engine expects.
    public var token: String

    public init(id: String, address: HostPort, token: String) {
        self.id = id
        self.address = address
        self.token = token
    }
}
