/// Who a verified token speaks for.
public struct Identity: Sendable, Hashable, CustomStringConvertible {
    public var user: String
    public var team: String
    public var groups: [String]

    public init(user: String, team: String, groups: [String] = []) {
        self.user = user
        self.team = team
        self.groups = groups
    }

    public var description: String { "\(team)/\(user)" }
}

/// A token whose signature and claims passed: the identity and how long it may be trusted.
public struct VerifiedToken: Sendable, Hashable {
    public var identity: Identity
    /// `exp`, in seconds since 1970.
    public var expiresAt: Double
    public var tokenID: String?

    public init(identity: Identity, expiresAt: Double, tokenID: String?) {
        self.identity = identity
        self.expiresAt = expiresAt
        self.tokenID = tokenID
    }
}
