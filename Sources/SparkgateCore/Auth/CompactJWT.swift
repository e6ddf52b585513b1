import Foundation

/// A JWS compact token split into its parts, before any signature check.
public struct CompactJWT: Sendable {
    public var algorithm: String
    public var keyID: String?
    public var claims: [String: JSONValue]
    /// `base64url(header) "." base64url(payload)`: the bytes the signature covers.
    public var signingInput: [UInt8]
    public var signature: [UInt8]

    public static func parse(_ token: Substring, maxBytes: Int) -> Result<CompactJWT, AuthFailure> {
        let bytes = token.utf8
        guard bytes.count <= maxBytes else {
            return .failure(
                AuthFailure(.tooLarge, "token of \(bytes.count) bytes is over auth.max_token_bytes (\(maxBytes))"))
        }
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            return .failure(
                AuthFailure(
                    .malformed, "token must have 3 dot-separated parts (header.payload.signature), not \(parts.count)"))
        }
        guard let headerBytes = Base64URL.decode(parts[0]) else {
            return .failure(AuthFailure(.malformed, "token header is not valid base64url"))
        }
        guard let payloadBytes = Base64URL.decode(parts[1]) else {
            return .failure(AuthFailure(.malformed, "token payload is not valid base64url"))
        }
        guard let signature = Base64URL.decode(parts[2]) else {
            return .failure(AuthFailure(.malformed, "token signature is not valid base64url"))
        }
        let decoder = JSONDecoder()
        guard case .object(let header)? = try? decoder.decode(JSONValue.self, from: Data(headerBytes)) else {
            return .failure(AuthFailure(.malformed, "token header is not a JSON object"))
        }
        guard case .object(let claims)? = try? decoder.decode(JSONValue.self, from: Data(payloadBytes)) else {
            return .failure(AuthFailure(.malformed, "token payload is not a JSON object"))
        }
        guard let alg = header["alg"]?.string, !alg.isEmpty else {
            return .failure(AuthFailure(.algorithm, "token header has no 'alg'"))
        }
        if alg.lowercased() == "none" {
            return .failure(AuthFailure(.algorithm, "token algorithm 'none' is not accepted: tokens must be signed"))
        }
        if let crit = header["crit"], crit != .null {
            return .failure(
                AuthFailure(.malformed, "token header has 'crit' extensions, which Sparkgate does not support"))
        }
        var kid: String?
        if let value = header["kid"] {
            guard let s = value.string else {
                return .failure(AuthFailure(.malformed, "token header 'kid' must be a string, not \(value.kind)"))
            }
            kid = s
        }
        guard signature.count > 0 else {
            return .failure(AuthFailure(.signature, "token has an empty signature"))
        }
        let signingInput = Array(bytes[bytes.startIndex..<parts[1].endIndex])
        return .success(
            CompactJWT(algorithm: alg, keyID: kid, claims: claims, signingInput: signingInput, signature: signature))
    }
}
