/// A launched engine as the shared state records it, for the replicas that did not launch it: whom it
/// serves, where it listens, its process and state, sealed by the replica that launched it
/// (`RecordSeal.Kind.engine`). It holds no token: every replica derives the engine's token from its id.
public struct SharedEngine: Sendable, Equatable {
    public var id: String
    public var backend: String
    /// The share key it serves (`EngineShareKey.description`); empty while it is warm.
    public var shareKey: String
    /// Its team; for a warm engine, the team it was started for (empty: any tenant).
    public var team: String
    public var user: String
    /// The replica that launched it (and renews its record).
    public var replica: String
    public var host: String
    public var port: Int
    /// The engine's process on the launching replica's host (0 before it started): a replica on the same
    /// host proves the port with it before connecting, as the launching replica does.
    public var pid: Int32
    public var state: EngineRegistry.State
    public var warm: Bool

    public init(
        id: String, backend: String, shareKey: String, team: String, user: String, replica: String, host: String,
        port: Int, pid: Int32,
        state: EngineRegistry.State, warm: Bool
    ) {
        self.id = id
        self.backend = backend
        self.shareKey = shareKey
        self.team = team
        self.user = user
        self.replica = replica
        self.host = host
        self.port = port
        self.pid = pid
        self.state = state
        self.warm = warm
    }

    /// `engine` as the replica `replica` that launched it records it.
    public init(_ engine: EngineRegistry.Engine, replica: String) {
        self.init(
            id: engine.id, backend: engine.key.backend, shareKey: engine.warm ? "" : engine.key.description,
            team: engine.key.team ?? "",
            user: engine.warm ? "" : engine.key.user ?? "", replica: replica, host: engine.host, port: engine.port,
            pid: engine.pid ?? 0,
            state: engine.state, warm: engine.warm)
    }

    /// The hash's field names, in the order of `values`; the seal is field `m`.
    public static let fieldNames = ["b", "k", "t", "u", "r", "h", "p", "pid", "s", "w"]
    public static let sealField = "m"

    public var values: [String] {
        [backend, shareKey, team, user, replica, host, String(port), String(pid), state.rawValue, warm ? "1" : "0"]
    }

    /// The seal over the id and every field.
    public func seal(_ seal: RecordSeal) -> String {
        seal.seal(.engine, [id] + values)
    }

    /// The hash's fields and values, seal included, for HSET.
    public func hash(_ seal: RecordSeal) -> [String: String] {
        var fields = Dictionary(uniqueKeysWithValues: zip(Self.fieldNames, values))
        fields[Self.sealField] = self.seal(seal)
        return fields
    }

    public var address: HostPort { HostPort(host: host, port: port) }

    /// What a record read from Redis turned out to be.
    public enum Read: Sendable, Equatable {
        case valid(SharedEngine)
        /// No such record (the engine is gone, or its replica died and it expired).
        case missing
        /// A record whose seal does not verify, or that cannot be read: no replica wrote it.
        case rejected
    }

    /// Reads the values of `fieldNames` then `sealField`, as HMGET returns them.
    public static func read(id: String, _ values: [String?], seal: RecordSeal) -> Read {
        guard values.count == fieldNames.count + 1 else { return .rejected }
        if values.allSatisfy({ $0 == nil }) { return .missing }
        let texts = values.compactMap { $0 }
        guard texts.count == values.count, let port = Int(texts[6]), (1...65535).contains(port),
            let pid = Int32(texts[7]),
            let state = EngineRegistry.State(rawValue: texts[8]), texts[9] == "0" || texts[9] == "1"
        else { return .rejected }
        let engine = SharedEngine(
            id: id, backend: texts[0], shareKey: texts[1], team: texts[2], user: texts[3], replica: texts[4],
            host: texts[5], port: port, pid: pid,
            state: state, warm: texts[9] == "1")
        // The seal covers the text as stored (`0020000` is not `20000`), and the text must be what the
        // launching replica writes.
        guard engine.values == Array(texts[..<10]), seal.verifies(texts[10], .engine, [id] + Array(texts[..<10])) else {
            return .rejected
        }
        return .valid(engine)
    }

    /// Whether it may serve `key`: it serves exactly that key on that backend, and listens where an engine
    /// can (a port of the pool, a host that names one machine).
    public func serves(_ key: EngineShareKey, ports: ClosedRange<Int>) -> Bool {
        !warm && backend == key.backend && shareKey == key.description && ports.contains(port)
            && !HostPort.isUnspecified(host)
    }
}
