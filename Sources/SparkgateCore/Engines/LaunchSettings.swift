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
    /// Engines kept started for each configured team whose backend this is, as the team's own OS user
    /// (`run_as` with `{team}`): the team's next first call takes one.
    public var warmEnginesPerTeam = 0
    /// The operator accepts that `run_as` gives several share keys one OS user (whose engines can then read
    /// each other's tokens and files). Off: such a `run_as` is a configuration error.
    public var allowSharedRunAs = false
    /// Put the last lines of a failed engine's log (with token-like text redacted) into the error its
    /// waiting callers get. Off: callers get the reason and where the operator finds the log.
    public var logTailInErrors = false

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

    /// Why `run_as` cannot keep tenants apart, as a configuration error; nil when every share key it can
    /// meet maps to a user of its own (up to the run-time check of `runAsRefusal`).
    public var runAsSharingProblem: String? {
        guard let runAs, !allowSharedRunAs else { return nil }
        let used = Set(LaunchCommand.placeholdersUsed(in: runAs))
        switch share {
        case .server:
            return nil
        case .team where !used.contains("team"):
            return
                "'\(runAs)' gives every team's engine the same OS user, so one team's code can read another's token and files; use a template with {team} (sg-{team}), or set allow_shared_run_as: true to accept it"
        case .user where !used.contains("team") || !used.contains("user"):
            return
                "'\(runAs)' can give two tenants one OS user (share is user: one engine per team and user); use a template with {team} and {user} (sg-{team}_{user}), or set allow_shared_run_as: true to accept it"
        default:
            if let separator = runAsSeparator, separator.isEmpty {
                return
                    "'\(runAs)' puts {team} and {user} side by side, so two tenants can map to one OS user; separate them (sg-{team}_{user})"
            }
            return nil
        }
    }

    /// The text between the two placeholders of a `run_as` that uses both (nil when it uses fewer).
    var runAsSeparator: String? {
        guard let runAs else { return nil }
        let parts = LaunchCommand.placeholdersUsed(in: runAs)
        guard parts.count == 2, let first = runAs.range(of: "{\(parts[0])}"),
            let second = runAs.range(of: "{\(parts[1])}")
        else { return nil }
        return first.upperBound <= second.lowerBound ? String(runAs[first.upperBound..<second.lowerBound]) : nil
    }

    /// Why `key`'s names do not give it an OS user of its own under `run_as`, at run time: with two
    /// placeholders, the first one's value must not contain the text that separates them (or two tenants
    /// could meet at one name).
    public func runAsRefusal(for key: EngineShareKey) -> String? {
        guard let runAs, !allowSharedRunAs, let separator = runAsSeparator, !separator.isEmpty else { return nil }
        let first =
            LaunchCommand.placeholdersUsed(in: runAs).first == "team"
            ? ("team", key.team ?? "") : ("user", key.user ?? "")
        guard first.1.contains(separator) else { return nil }
        return
            "backend '\(key.backend)': \(first.0) '\(first.1)' contains '\(separator)', which separates {team} and {user} in run_as '\(runAs)': the OS user it maps to could be another tenant's. An operator must choose a separator no \(first.0) name contains"
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
