/// The shared-state side of finding a share key's engine: the arguments of `SharedEngineScripts.acquire` and
/// the reading of its reply. Pure, so the mapping is tested without Redis.
public struct SharedEngineAcquisition: Sendable, Equatable {
    public var keys: [String]
    public var arguments: [String]

    /// What the shared state answered.
    public enum Verdict: Sendable, Equatable {
        /// An engine serves the key already (on any replica).
        case exists(SharedEngine)
        /// The proposed engine was recorded: launch it.
        case launch
        /// The proposed warm engine was given the key.
        case adopt
        case refused(SparkgateError)
    }

    /// Proposes `engine` (its id, port and token chosen by this replica) for `key`, or the warm engine
    /// `adopting` if this replica has one ready.
    public init(
        _ key: EngineShareKey, engine: EngineRegistry.Engine, adopting: String?, settings: LaunchSettings, replica: String, host: String, now: Double,
        holdingSeconds: Double, keys names: SharedKeys
    ) {
        keys = [
            names.engineFor(key), names.engines(backend: key.backend), names.teamEngines(backend: key.backend, team: key.team ?? ""),
            names.engine(engine.id), names.engine(adopting ?? ""),
        ]
        arguments = [
            SharedAdmission.number(now), SharedAdmission.number(now + holdingSeconds), String(settings.maxEngines), String(settings.teamLimit), engine.id,
            replica, host, String(engine.port), engine.token, key.backend, key.description, key.team ?? "", key.user ?? "", adopting ?? "",
            names.enginePrefix,
        ]
    }

    /// Reads the script's reply.
    public static func verdict(_ reply: [String], key: EngineShareKey, settings: LaunchSettings) -> Verdict? {
        switch reply.first {
        case "exists" where reply.count == 7:
            guard let port = Int(reply[4]), let state = EngineRegistry.State(rawValue: reply[2]) else { return nil }
            return .exists(SharedEngine(id: reply[1], state: state, host: reply[3], port: port, token: reply[5], replica: reply[6]))
        case "launch" where reply.count == 1:
            return .launch
        case "adopt" where reply.count == 1:
            return .adopt
        case "max_engines" where reply.count == 2:
            return .refused(EngineRegistry.maxEnginesRefusal(key, settings: settings))
        case "team_engines" where reply.count == 2:
            return .refused(EngineRegistry.teamLimitRefusal(key, settings: settings))
        default:
            return nil
        }
    }
}

/// An engine as the shared state records it, for the replicas that did not launch it.
public struct SharedEngine: Sendable, Equatable {
    public var id: String
    public var state: EngineRegistry.State
    public var host: String
    public var port: Int
    public var token: String
    /// The replica that launched it (and renews its record).
    public var replica: String

    public init(id: String, state: EngineRegistry.State, host: String, port: Int, token: String, replica: String) {
        self.id = id
        self.state = state
        self.host = host
        self.port = port
        self.token = token
        self.replica = replica
    }

    /// From the hash's fields (`HMGET s h p tok r`); nil when the record is gone or damaged.
    public init?(id: String, fields: [String?]) {
        guard fields.count == 5, let s = fields[0], let state = EngineRegistry.State(rawValue: s), let host = fields[1], let p = fields[2],
            let port = Int(p), let token = fields[3], let replica = fields[4]
        else { return nil }
        self.init(id: id, state: state, host: host, port: port, token: token, replica: replica)
    }

    public var address: HostPort { HostPort(host: host, port: port) }
}
