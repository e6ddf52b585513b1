/// The checks a token's claims must pass once its signature is good, and how they map to an identity.
public struct ClaimsPolicy: Sendable, Equatable {
    public var issuer: String
    public var audience: String
    public var leewaySeconds: Double
    public var userClaim: String
    public var teamClaim: String
    public var groupsClaim: String
    public var revokedTokenIDs: Set<String>

    public init(
        issuer: String, audience: String, leewaySeconds: Double = 30, userClaim: String = "sub",
        teamClaim: String = "team", groupsClaim: String = "groups", revokedTokenIDs: Set<String> = []
    ) {
        self.issuer = issuer
        self.audience = audience
        self.leewaySeconds = leewaySeconds
        self.userClaim = userClaim
        self.teamClaim = teamClaim
        self.groupsClaim = groupsClaim
        self.revokedTokenIDs = revokedTokenIDs
    }

    /// Checks `claims` at `now` (Unix seconds).
    public func verify(_ claims: [String: JSONValue], now: Double) -> Result<VerifiedToken, AuthFailure> {
        guard let expValue = claims["exp"] else {
            return .failure(AuthFailure(.claims, "token has no 'exp' claim; Sparkgate only accepts tokens that expire"))
        }
        guard let exp = expValue.number else {
            return .failure(AuthFailure(.claims, "token 'exp' must be a number, not \(expValue.kind)"))
        }
        if now > exp + leewaySeconds {
            return .failure(AuthFailure(.expired, "token expired at \(Timestamp.rfc3339(exp)); ask for a new one"))
        }
        if let nbfValue = claims["nbf"] {
            guard let nbf = nbfValue.number else {
                return .failure(AuthFailure(.claims, "token 'nbf' must be a number, not \(nbfValue.kind)"))
            }
            if nbf - leewaySeconds > now {
                return .failure(AuthFailure(.notYetValid, "token is not valid before \(Timestamp.rfc3339(nbf))"))
            }
        }
        if let iatValue = claims["iat"] {
            guard let iat = iatValue.number else {
                return .failure(AuthFailure(.claims, "token 'iat' must be a number, not \(iatValue.kind)"))
            }
            if iat - leewaySeconds > now {
                return .failure(
                    AuthFailure(
                        .notYetValid,
                        "token was issued in the future (\(Timestamp.rfc3339(iat))); check the issuer's clock"))
            }
        }
        switch claims["iss"] {
        case .string(let iss) where iss == issuer:
            break
        case .string(let iss):
            return .failure(AuthFailure(.issuer, "issuer '\(Self.clip(iss))' not accepted; expected '\(issuer)'"))
        case nil:
            return .failure(AuthFailure(.issuer, "token has no 'iss' claim; expected '\(issuer)'"))
        case let other?:
            return .failure(AuthFailure(.issuer, "token 'iss' must be a string, not \(other.kind)"))
        }
        switch claims["aud"] {
        case .string(let aud):
            guard aud == audience else {
                return .failure(
                    AuthFailure(.audience, "audience '\(Self.clip(aud))' not accepted; expected '\(audience)'"))
            }
        case .array(let values):
            let auds = values.compactMap(\.string)
            guard auds.contains(audience) else {
                return .failure(
                    AuthFailure(
                        .audience,
                        "audience \(auds.prefix(4).map { "'\(Self.clip($0))'" }.joined(separator: ", ")) not accepted; expected '\(audience)'"
                    ))
            }
        case nil:
            return .failure(AuthFailure(.audience, "token has no 'aud' claim; expected '\(audience)'"))
        case let other?:
            return .failure(
                AuthFailure(.audience, "token 'aud' must be a string or an array of strings, not \(other.kind)"))
        }
        let user: String
        switch requiredString(claims, userClaim, role: "user") {
        case .success(let v): user = v
        case .failure(let f): return .failure(f)
        }
        let team: String
        switch requiredString(claims, teamClaim, role: "team") {
        case .success(let v): team = v
        case .failure(let f): return .failure(f)
        }
        var groups: [String] = []
        switch claims[groupsClaim] {
        case nil, .null?: break
        case .array(let values)?:
            for value in values {
                guard let g = value.string else {
                    return .failure(
                        AuthFailure(.claims, "claim '\(groupsClaim)' (the groups) must hold strings, not \(value.kind)")
                    )
                }
                groups.append(g)
            }
        case .string(let s)?:
            groups = s.split(separator: ",").map { String($0) }
        case let other?:
            return .failure(
                AuthFailure(
                    .claims, "claim '\(groupsClaim)' (the groups) must be an array of strings, not \(other.kind)"))
        }
        var tokenID: String?
        if let jti = claims["jti"] {
            guard let id = jti.string else {
                return .failure(AuthFailure(.claims, "token 'jti' must be a string, not \(jti.kind)"))
            }
            if revokedTokenIDs.contains(id) {
                return .failure(AuthFailure(.revoked, "token '\(Self.clip(id))' has been revoked; ask for a new one"))
            }
            tokenID = id
        }
        return .success(
            VerifiedToken(identity: Identity(user: user, team: team, groups: groups), expiresAt: exp, tokenID: tokenID))
    }

    private func requiredString(
        _ claims: [String: JSONValue], _ name: String, role: String
    ) -> Result<String, AuthFailure> {
        guard let value = claims[name] else {
            return .failure(AuthFailure(.claims, "token has no '\(name)' claim (the \(role))"))
        }
        guard let s = value.string else {
            return .failure(AuthFailure(.claims, "claim '\(name)' (the \(role)) must be a string, not \(value.kind)"))
        }
        guard !s.isEmpty else {
            return .failure(AuthFailure(.claims, "claim '\(name)' (the \(role)) must not be empty"))
        }
        // A user or team name is echoed in logs, metrics labels (team) and backend requests: keep it printable.
        guard s.utf8.count <= 256, s.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            return .failure(
                AuthFailure(.claims, "claim '\(name)' (the \(role)) must be at most 256 printable characters"))
        }
        return .success(s)
    }

    /// Claim values are attacker-chosen: never echo more than a short prefix.
    public static func clipped(_ s: String) -> String { clip(s) }

    static func clip(_ s: String) -> String {
        let printable = String(s.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7F }.map(Character.init))
        return printable.count > 64 ? String(printable.prefix(64)) + "…" : printable
    }
}
