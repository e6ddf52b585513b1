/// A backend that is a pool of engines Sparkgate launches on demand (`backends.<name>.launch`) instead of
/// fixed endpoints.
public struct LaunchSettings: Sendable, Equatable {
    /// Who shares one engine.
    public enum Share: String, Sendable, CaseIterable {
        /// One engine per team.
        case team
        /// One engine per (team, user).
        case user
        /// One engine for everyone routed to the backend.
        case server
    }

    /// The engine's argv (no shell), with placeholders from `LaunchCommand.placeholders`.
    public var command: [String]
    /// Variables added to the engine's environment (placeholders allowed); the engine inherits only
    /// `LaunchCommand.inheritedEnvironment` from the gateway, so the gateway's own secrets stay out.
    public var environment: [String: String] = [:]
    public var share = Share.team
    public var ports: ClosedRange<Int> = 20000...20999
    /// Where each engine gets a private directory (its token file and log); the system's temporary
    /// directory when unset.
    public var workDirectory: String?
    public var startupTimeoutSeconds = 120.0
    /// An engine stops this long after its last session was released.
    public var idleSeconds = 600.0
    /// After SIGTERM, SIGKILL follows this long later.
    public var stopGraceSeconds = 30.0
    public var maxEngines = 8
    public var maxEnginesPerTeam: Int?
    /// The OS user each engine runs as: a name, or a template with `{team}` and `{user}`. Nil runs engines
    /// as the gateway's own user.
    public var runAs: String?
    /// With shared state, the address other replicas reach this replica's engines at (the engines must
    /// listen there, not only on loopback).
    public var advertiseHost: String?
    /// Engines kept started with no tenant, so a first call takes one instead of waiting for a launch.
    public var warmEngines = 0

    public init(command: [String]) {
        self.command = command
    }

    public var teamLimit: Int { maxEnginesPerTeam ?? maxEngines }

    /// The address engines listen on and are reached at: `advertise_host`, or loopback.
    public var host: String { advertiseHost ?? "127.0.0.1" }

    /// The placeholders `run_as` may use.
    public static let runAsPlaceholders: Set<String> = ["team", "user"]

    /// Whether engines of different tenants can share one OS user: a fixed `run_as` name (or none) gives every
    /// engine of the backend the same user.
    public var runAsIsFixed: Bool { runAs.map { LaunchCommand.placeholdersUsed(in: $0).isEmpty } ?? true }

    /// The OS user name for the engine of `key`, nil when engines run as the gateway's user.
    public func runAsUser(for key: EngineShareKey) -> String? {
        runAs.map { LaunchCommand.fill($0, ["team": key.team ?? "", "user": key.user ?? ""]) }
    }

    /// The key of the engine that serves `identity` on this backend.
    public func shareKey(backend: String, team: String, user: String) -> EngineShareKey {
        switch share {
        case .team: EngineShareKey(backend: backend, team: team, user: nil)
        case .user: EngineShareKey(backend: backend, team: team, user: user)
        case .server: EngineShareKey(backend: backend, team: nil, user: nil)
        }
    }
}

/// Who an engine serves: a backend and, by share level, a team or a (team, user).
public struct EngineShareKey: Sendable, Hashable, CustomStringConvertible {
    public var backend: String
    public var team: String?
    public var user: String?

    public init(backend: String, team: String?, user: String?) {
        self.backend = backend
        self.team = team
        self.user = user
    }

    /// `team:analytics`, `user:analytics/alice` or `server`, as the admin API shows it.
    public var description: String {
        switch (team, user) {
        case (let team?, let user?): "user:\(team)/\(user)"
        case (let team?, nil): "team:\(team)"
        default: "server"
        }
    }
}
