/// What one replica tells the others over pub/sub: a session released or an operation ended there, so
/// each forgets its own record of it at once. `origin` names the replica that sent it, which ignores its own.
public struct SharedEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case sessionReleased(SessionKey)
        case operationEnded(OperationKey)
        /// A launched engine stopped or died: sessions bound to it have lost their state.
        case engineGone(String)
    }

    public var origin: String
    public var kind: Kind

    public init(origin: String, kind: Kind) {
        self.origin = origin
        self.kind = kind
    }

    /// `<origin>` then `s` + session or `o` + operation, each part length-prefixed.
    public var message: String {
        switch kind {
        case .sessionReleased(let s):
            SharedKeys.component(origin) + "s" + SharedKeys.component(s.owner.team) + SharedKeys.component(s.owner.user)
                + SharedKeys.component(s.clientSessionID)
        case .operationEnded(let o):
            SharedKeys.component(origin) + "o" + SharedKeys.component(o.session.owner.team)
                + SharedKeys.component(o.session.owner.user)
                + SharedKeys.component(o.session.clientSessionID) + SharedKeys.component(o.operationID)
        case .engineGone(let id):
            SharedKeys.component(origin) + "e" + SharedKeys.component(id)
        }
    }

    /// Reads `message`; nil for anything else.
    public init?(message: String) {
        var rest = Substring(message)
        guard let origin = SharedKeys.take(&rest), let tag = rest.first else { return nil }
        rest = rest.dropFirst()
        if tag == "e" {
            guard let id = SharedKeys.take(&rest), rest.isEmpty else { return nil }
            self.init(origin: origin, kind: .engineGone(id))
            return
        }
        guard let team = SharedKeys.take(&rest), let user = SharedKeys.take(&rest), let session = SharedKeys.take(&rest)
        else { return nil }
        let key = SessionKey(owner: UserKey(team: team, user: user), clientSessionID: session)
        switch tag {
        case "s" where rest.isEmpty:
            self.init(origin: origin, kind: .sessionReleased(key))
        case "o":
            guard let operation = SharedKeys.take(&rest), rest.isEmpty else { return nil }
            self.init(origin: origin, kind: .operationEnded(OperationKey(session: key, operationID: operation)))
        default:
            return nil
        }
    }
}
