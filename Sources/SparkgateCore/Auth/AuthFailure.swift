/// Why a request could not be authenticated: a message the user can act on, and a bounded metric label.
///
/// Messages never contain the token itself.
public struct AuthFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: String, Sendable, CaseIterable {
        case missing = "missing_token"
        case malformed = "malformed_token"
        case tooLarge = "token_too_large"
        case algorithm = "algorithm_not_allowed"
        case unknownKey = "unknown_key"
        case signature = "bad_signature"
        case expired = "expired"
        case notYetValid = "not_yet_valid"
        case issuer = "wrong_issuer"
        case audience = "wrong_audience"
        case claims = "bad_claims"
        case revoked = "revoked"
        case unknownTeam = "unknown_team"
    }

    public var reason: Reason
    public var message: String

    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { message }

    /// Unknown teams are authenticated but not authorised; every other failure is an authentication failure.
    public var error: SparkgateError {
        reason == .unknownTeam ? .permissionDenied(message) : .unauthenticated(message)
    }
}
