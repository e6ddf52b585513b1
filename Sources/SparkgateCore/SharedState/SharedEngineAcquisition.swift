import Foundation

/// The shared-state side of finding a share key's engine: the arguments of `SharedEngineScripts.acquire` and
/// the reading of its reply. Pure, so the mapping is tested without Redis.
public struct SharedEngineAcquisition: Sendable, Equatable {
    public var keys: [String]
    public var arguments: [String]

    /// What the shared state answered.
    public enum Verdict: Sendable, Equatable {
        /// An engine serves the key already (on any replica), as its sealed record says.
        case exists(SharedEngine)
        /// The key names engine `id`, whose record does not verify or does not serve this key: no replica
        /// wrote it so.
        case rejected(id: String)
        /// The proposed engine was recorded: launch it.
        case launch
        /// The offered warm engine was given the key.
        case adopt
        case refused(SparkgateError)
    }

    /// Proposes `engine` (its id and port chosen by this replica) for `key`, or the warm engine `adopting`
    /// that this replica has ready and has reserved for this call.
    public init(
        _ key: EngineShareKey, engine: EngineRegistry.Engine, adopting warm: EngineRegistry.Engine?,
        settings: LaunchSettings, replica: String,
        now: Double, holdingSeconds: Double, keys names: SharedKeys, seal: RecordSeal
    ) {
        keys = [
            names.engineFor(key), names.engines(backend: key.backend),
            names.teamEngines(backend: key.backend, team: key.team ?? ""),
            names.engine(engine.id), names.engine(warm?.id ?? ""),
        ]
        let adoption = warm.map { warm in
            SharedEngineArguments.Adopt(
                id: warm.id, replica: replica,
                fields: SharedEngine(EngineRegistry.adopted(warm, for: key, now: now), replica: replica).hash(seal))
        }
        let document = SharedEngineArguments.Acquire(
            now: now, expiry: now + holdingSeconds, maxEngines: settings.maxEngines, teamLimit: settings.teamLimit,
            team: key.team ?? "",
            enginePrefix: names.enginePrefix,
            launch: SharedEngineArguments.Record(
                id: engine.id, fields: SharedEngine(engine, replica: replica).hash(seal)), adopt: adoption)
        arguments = [SharedEngineArguments.json(document)]
    }

    /// Reads the script's reply (nil elements for Redis nils), checking an existing engine's record: it must
    /// be sealed by a replica, serve exactly `key`, and listen on a port of the pool.
    public static func verdict(
        _ reply: [String?], key: EngineShareKey, settings: LaunchSettings, seal: RecordSeal
    ) -> Verdict? {
        switch reply.first ?? nil {
        case "exists" where reply.count == 3 + SharedEngine.fieldNames.count:
            guard let id = reply[1] else { return nil }
            guard case .valid(let engine) = SharedEngine.read(id: id, Array(reply[2...]), seal: seal),
                engine.serves(key, ports: settings.ports)
            else {
                return .rejected(id: id)
            }
            return .exists(engine)
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

/// The named arguments of `SharedEngineScripts`, each script's one JSON document.
public enum SharedEngineArguments {
    public struct Record: Encodable, Sendable {
        public var id: String
        /// The hash's fields, seal included.
        public var fields: [String: String]

        public init(id: String, fields: [String: String]) {
            self.id = id
            self.fields = fields
        }
    }

    public struct Adopt: Encodable, Sendable {
        var id: String
        /// The replica that offers it: the script adopts only its own warm engine.
        var replica: String
        var fields: [String: String]
    }

    struct Acquire: Encodable {
        var now: Double
        var expiry: Double
        var maxEngines: Int
        var teamLimit: Int
        var team: String
        var enginePrefix: String
        var launch: Record
        var adopt: Adopt?

        // The scripts read snake_case fields.
        enum CodingKeys: String, CodingKey {
            case now, expiry, team, launch, adopt
            case maxEngines = "max_engines", teamLimit = "team_limit", enginePrefix = "engine_prefix"
        }
    }

    public struct Warm: Encodable, Sendable {
        var now: Double
        var expiry: Double
        var maxEngines: Int
        var engine: Record

        enum CodingKeys: String, CodingKey {
            case now, expiry, engine
            case maxEngines = "max_engines"
        }

        public init(now: Double, expiry: Double, maxEngines: Int, engine: Record) {
            self.now = now
            self.expiry = expiry
            self.maxEngines = maxEngines
            self.engine = engine
        }
    }

    public struct Renew: Encodable, Sendable {
        var now: Double
        var expiry: Double
        var enginePrefix: String
        var engines: [Record]

        enum CodingKeys: String, CodingKey {
            case now, expiry, engines
            case enginePrefix = "engine_prefix"
        }

        public init(now: Double, expiry: Double, enginePrefix: String, engines: [Record]) {
            self.now = now
            self.expiry = expiry
            self.enginePrefix = enginePrefix
            self.engines = engines
        }
    }

    /// The document as JSON text (keys sorted, so equal arguments are equal text).
    public static func json(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every value here is a plain string or number: encoding cannot fail.
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
