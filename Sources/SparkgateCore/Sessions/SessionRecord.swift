/// A team member: quotas that are "per user" count per (team, user).
public struct UserKey: Sendable, Hashable, CustomStringConvertible {
    public var team: String
    public var user: String

    public init(team: String, user: String) {
        self.team = team
        self.user = user
    }

    public init(_ identity: Identity) {
        self.init(team: identity.team, user: identity.user)
    }

    public var description: String { "\(team)/\(user)" }
}

/// A session as its owner names it. Two users who send the same session id have two sessions.
public struct SessionKey: Sendable, Hashable, CustomStringConvertible {
    public var owner: UserKey
    public var clientSessionID: String

    public init(owner: UserKey, clientSessionID: String) {
        self.owner = owner
        self.clientSessionID = clientSessionID
    }

    public var description: String { "\(owner)/\(clientSessionID)" }
}

/// An operation within its session: an operation id guessed by another user names another operation.
public struct OperationKey: Sendable, Hashable {
    public var session: SessionKey
    public var operationID: String

    public init(session: SessionKey, operationID: String) {
        self.session = session
        self.operationID = operationID
    }
}

/// One client session as Sparkgate knows it.
public struct SessionRecord: Sendable, Equatable {
    public var clientSessionID: String
    /// The id the backend sees (the client's own id when namespacing is off).
    public var backendSessionID: String
    public var owner: UserKey
    public var backend: String
    public var created: Double
    public var lastUsed: Double
    /// RPCs on this session now in flight; a session with any is never idle.
    public var activeCalls = 0
    public var activeOperations = 0
    public var bytesIn: Int64 = 0
    public var bytesOut: Int64 = 0
    public var rowsOut: Int64 = 0
    public var artifactBytes = 0
    public var clientType: String?
    /// The team's idle timeout when the session was last used.
    public var idleSeconds: Double
    /// The team's `max_session_seconds` when the session started (0: no limit).
    public var maxSeconds = 0.0
    /// A ReleaseSession is on its way: the backend closes everything in the session, so a ReleaseExecute that
    /// races it is done already.
    public var releasing = false
    /// The endpoint the session lives on, fixed by its first call.
    public var endpoint: HostPort?
    /// The launched engine the session lives on (backends with `launch`).
    public var engine: String?

    public init(
        clientSessionID: String, backendSessionID: String, owner: UserKey, backend: String, created: Double,
        lastUsed: Double, idleSeconds: Double
    ) {
        self.clientSessionID = clientSessionID
        self.backendSessionID = backendSessionID
        self.owner = owner
        self.backend = backend
        self.created = created
        self.lastUsed = lastUsed
        self.idleSeconds = idleSeconds
    }

    public var idleDeadline: Double { lastUsed + idleSeconds }
    /// Whether the session has outlived its lifetime at `now`.
    public func expired(now: Double) -> Bool { maxSeconds > 0 && now - created >= maxSeconds }
    public var placement: SessionPlacement { SessionPlacement(endpoint: endpoint, engine: engine) }
    public var key: SessionKey { SessionKey(owner: owner, clientSessionID: clientSessionID) }
}

/// One ExecutePlan operation, from its start until it completes, fails, is released, interrupted or abandoned.
/// It outlives its streams: a reattachable operation continues across ReattachExecute calls.
public struct OperationRecord: Sendable, Equatable {
    public var operationID: String
    public var clientSessionID: String
    public var owner: UserKey
    public var started: Double
    public var reattachable: Bool
    public var tags: [String]
    public var attachedStreams = 0
    /// When the last stream detached, while none is attached.
    public var detachedSince: Double?
    public var resultBytes = 0
    public var resultRows: Int64 = 0
    /// Limits fixed when the operation started: lowering a quota applies to new work only.
    public var maxResultBytes: Int
    public var maxSeconds: Double
    /// Which start of this operation id it is, in its ledger.
    public var instance: UInt64 = 0

    public var key: OperationKey {
        OperationKey(session: SessionKey(owner: owner, clientSessionID: clientSessionID), operationID: operationID)
    }
}
