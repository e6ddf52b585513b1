/// Redis key names for the state replicas share. Every name a client influences (team, user, session and
/// operation ids) goes in length-prefixed, so no choice of names makes two keys collide.
public struct SharedKeys: Sendable, Equatable {
    public let prefix: String

    public init(prefix: String) {
        self.prefix = prefix
    }

    static func component(_ text: String) -> String { "\(text.utf8.count):\(text)" }

    /// The member that stands for a user in sets of owners.
    public func member(_ user: UserKey) -> String { Self.component(user.team) + Self.component(user.user) }

    /// Decodes `member(_:)`; nil for anything else.
    public static func user(fromMember member: String) -> UserKey? {
        var rest = Substring(member)
        guard let team = take(&rest), let user = take(&rest), rest.isEmpty else { return nil }
        return UserKey(team: team, user: user)
    }

    static func take(_ text: inout Substring) -> String? {
        guard let colon = text.firstIndex(of: ":"), let count = Int(text[..<colon]), count >= 0 else { return nil }
        let bytes = text.utf8[text.index(after: colon)...]
        guard bytes.count >= count else { return nil }
        let end = bytes.index(bytes.startIndex, offsetBy: count)
        guard let value = String(bytes[bytes.startIndex..<end]) else { return nil }
        text = Substring(bytes[end...])
        return value
    }

    public func bucket(_ user: UserKey) -> String { prefix + "bucket:" + member(user) }
    public func housekeepingBucket(_ user: UserKey) -> String { prefix + "housekeeping:" + member(user) }
    /// Who holds a client session id: members are users, scores the time each holding expires.
    public func owners(_ sessionID: String) -> String { prefix + "owners:" + Self.component(sessionID) }
    /// A user's sessions, scored by expiry.
    public func sessions(_ user: UserKey) -> String { prefix + "sessions:" + member(user) }
    /// A session's running operations, scored by expiry.
    public func operations(_ session: SessionKey) -> String {
        prefix + "operations:" + member(session.owner) + Self.component(session.clientSessionID)
    }
    /// A team's running operations, scored by expiry.
    public func teamOperations(_ team: String) -> String { prefix + "team-operations:" + Self.component(team) }
    /// An operation as a member of its team's set: the member prefix of its session plus its id.
    public func teamOperationPrefix(_ session: SessionKey) -> String {
        member(session.owner) + Self.component(session.clientSessionID)
    }
    public func teamOperationMember(_ operation: OperationKey) -> String {
        teamOperationPrefix(operation.session) + Self.component(operation.operationID)
    }
    /// Where a session lives (its endpoint or engine), a hash that expires with the session.
    public func placement(_ session: SessionKey) -> String {
        prefix + "placement:" + member(session.owner) + Self.component(session.clientSessionID)
    }
    /// A launched engine's record (`SharedEngineScripts`).
    public func engine(_ id: String) -> String { enginePrefix + Self.component(id) }
    public var enginePrefix: String { prefix + "engine:" }
    /// The engine that serves a share key now.
    public func engineFor(_ key: EngineShareKey) -> String {
        prefix + "engine-for:" + Self.component(key.backend) + Self.component(key.description)
    }
    /// A launch pool's engines, and a team's, scored by expiry.
    public func engines(backend: String) -> String { prefix + "engines:" + Self.component(backend) }
    public func teamEngines(backend: String, team: String) -> String {
        prefix + "engines-team:" + Self.component(backend) + Self.component(team)
    }
    /// How many sessions each replica holds on an engine (fields: replicas; values: count and expiry).
    public func engineUse(_ id: String) -> String { prefix + "engine-use:" + Self.component(id) }
    /// The pub/sub channel of operator kills.
    public var killChannel: String { prefix + "kill" }
    /// The pub/sub channel of what ended on one replica that the others hold records of: released sessions
    /// and ended operations (`SharedEvent`).
    public var endedChannel: String { prefix + "ended" }
    /// A value every replica reads on its heartbeat: when Redis loses its data (a restart without
    /// persistence, a flush, a failover to a replica that was behind) it is gone or new, and each replica
    /// writes back what it holds.
    public var epoch: String { prefix + "epoch" }
}

extension SharedKeys {
    /// The kill message naming a session.
    public func killMessage(_ session: SessionKey) -> String {
        member(session.owner) + Self.component(session.clientSessionID)
    }

    public static func session(fromKillMessage message: String) -> SessionKey? {
        var rest = Substring(message)
        guard let team = take(&rest), let user = take(&rest), let id = take(&rest), rest.isEmpty else { return nil }
        return SessionKey(owner: UserKey(team: team, user: user), clientSessionID: id)
    }
}
