import Foundation
import JWTKit

/// The claims `sparkgate token issue` writes. The team and groups claim names come from the configuration.
struct TokenClaims: JWTPayload {
    var issuer: String
    var audience: String
    var subject: String
    var userClaim: String
    var team: String
    var teamClaim: String
    var groups: [String]
    var groupsClaim: String
    var issuedAt: Int
    var expires: Int
    var id: String

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(issuer, forKey: Key("iss"))
        try c.encode(audience, forKey: Key("aud"))
        try c.encode(subject, forKey: Key(userClaim))
        try c.encode(team, forKey: Key(teamClaim))
        if !groups.isEmpty { try c.encode(groups, forKey: Key(groupsClaim)) }
        try c.encode(issuedAt, forKey: Key("iat"))
        try c.encode(issuedAt, forKey: Key("nbf"))
        try c.encode(expires, forKey: Key("exp"))
        try c.encode(id, forKey: Key("jti"))
    }

    init(
        issuer: String, audience: String, subject: String, userClaim: String, team: String, teamClaim: String,
        groups: [String], groupsClaim: String, issuedAt: Int, expires: Int, id: String
    ) {
        self.issuer = issuer
        self.audience = audience
        self.subject = subject
        self.userClaim = userClaim
        self.team = team
        self.teamClaim = teamClaim
        self.groups = groups
        self.groupsClaim = groupsClaim
        self.issuedAt = issuedAt
        self.expires = expires
        self.id = id
    }

    init(from decoder: any Decoder) throws {
        throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "TokenClaims is only encoded"))
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Durations like 8h, 30m, 7d, 3600s or 3600.
enum TTL {
    static func seconds(_ text: String) -> Int? {
        guard let unit = text.last else { return nil }
        if unit.isNumber { return Int(text) }
        guard let n = Int(text.dropLast()), n > 0 else { return nil }
        switch unit {
        case "s": return n
        case "m": return n * 60
        case "h": return n * 3600
        case "d": return n * 86_400
        default: return nil
        }
    }
}
