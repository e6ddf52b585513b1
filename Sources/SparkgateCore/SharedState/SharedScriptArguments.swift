/// The ARGV[1] of the session scripts (`SharedScripts.place`, `release`, `endOperation`, `hold`): one JSON
/// document with named fields each, read with Redis's `cjson` (the admission's is `SharedAdmission.Arguments`,
/// the engines' `SharedEngineArguments`).
public enum SharedScriptArguments {
    public struct Place: Encodable, Sendable {
        public var endpoint: String
        public var engine: String
        /// How long the record lives, in milliseconds.
        public var expiryMilliseconds: Int64
        /// `claim` keeps a recorded placement; `move` replaces it.
        public var mode: String
        public var seal: String

        enum CodingKeys: String, CodingKey {
            case endpoint, engine, mode, seal
            case expiryMilliseconds = "expiry_ms"
        }

        public init(endpoint: String, engine: String, expiryMilliseconds: Int64, mode: String, seal: String) {
            self.endpoint = endpoint
            self.engine = engine
            self.expiryMilliseconds = expiryMilliseconds
            self.mode = mode
            self.seal = seal
        }
    }

    public struct Release: Encodable, Sendable {
        /// The owner, as the session's owners list it.
        public var member: String
        public var session: String
        public var teamOperationPrefix: String
        /// Where every replica hears of it, and what it hears (sealed).
        public var channel: String
        public var message: String

        enum CodingKeys: String, CodingKey {
            case member, session, channel, message
            case teamOperationPrefix = "team_operation_prefix"
        }

        public init(member: String, session: String, teamOperationPrefix: String, channel: String, message: String) {
            self.member = member
            self.session = session
            self.teamOperationPrefix = teamOperationPrefix
            self.channel = channel
            self.message = message
        }
    }

    public struct EndOperation: Encodable, Sendable {
        public var operation: String
        public var teamOperationMember: String
        public var channel: String
        public var message: String

        enum CodingKeys: String, CodingKey {
            case operation, channel, message
            case teamOperationMember = "team_operation_member"
        }

        public init(operation: String, teamOperationMember: String, channel: String, message: String) {
            self.operation = operation
            self.teamOperationMember = teamOperationMember
            self.channel = channel
            self.message = message
        }
    }

    /// What a replica holds: one (expiry, member) per sorted set of KEYS, in order, then one placement per
    /// placement key after them.
    public struct Hold: Encodable, Sendable {
        public struct Member: Encodable, Sendable {
            public var expiry: Double
            public var member: String

            public init(expiry: Double, member: String) {
                self.expiry = expiry
                self.member = member
            }
        }

        public struct Placement: Encodable, Sendable {
            public var expiry: Double
            public var endpoint: String
            public var engine: String
            public var seal: String

            public init(expiry: Double, endpoint: String, engine: String, seal: String) {
                self.expiry = expiry
                self.endpoint = endpoint
                self.engine = engine
                self.seal = seal
            }
        }

        public var now: Double
        /// `renew` or `reassert` (write back what Redis lost).
        public var mode: String
        public var members: [Member]
        public var placements: [Placement]

        public init(now: Double, mode: String, members: [Member], placements: [Placement]) {
            self.now = now
            self.mode = mode
            self.members = members
            self.placements = placements
        }
    }
}
