import Foundation
import JWTKit
import SparkgateCore

/// A JSON Web Key Set read into verification keys. Keys Sparkgate cannot use (encryption keys, unknown
/// types, keys without `kid`) are skipped with a reason rather than failing the whole set.
public struct JWKSDocument: Sendable {
    public var keys: [VerificationKey]
    public var skipped: [String]

    public static func parse(_ data: Data, origin: String) async throws -> JWKSDocument {
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let list = root["keys"] as? [Any]
        else {
            throw KeyLoader.Failure(key: origin, message: "not a JWKS document (expected {\"keys\": [...]})")
        }
        var keys: [VerificationKey] = []
        var skipped: [String] = []
        for (index, item) in list.enumerated() {
            guard let object = item as? [String: Any] else {
                skipped.append("key \(index): not an object")
                continue
            }
            guard let kid = object["kid"] as? String, !kid.isEmpty else {
                skipped.append("key \(index): no kid")
                continue
            }
            if let use = object["use"] as? String, use != "sig" {
                skipped.append("key '\(kid)': use '\(use)' is not 'sig'")
                continue
            }
            guard let algorithm = pinnedAlgorithm(object) else {
                skipped.append(
                    "key '\(kid)': no usable algorithm (kty \(object["kty"] ?? "?"), alg \(object["alg"] ?? "none"))")
                continue
            }
            do {
                let json = try JSONSerialization.data(withJSONObject: object)
                let jwk = try JSONDecoder().decode(JWK.self, from: json)
                let collection = JWTKeyCollection()
                try await collection.add(jwk: jwk)
                let verifier = try await collection.getKey(for: JWKIdentifier(string: kid), alg: algorithm.rawValue)
                guard verifier.name == algorithm.rawValue else {
                    skipped.append("key '\(kid)': jwt-kit built a \(verifier.name) key, not \(algorithm.rawValue)")
                    continue
                }
                keys.append(VerificationKey(kid: kid, algorithm: algorithm, verifier: verifier, origin: origin))
            } catch {
                skipped.append("key '\(kid)': \(error)")
            }
        }
        return JWKSDocument(keys: keys, skipped: skipped)
    }

    /// The algorithm a JWK is pinned to: its `alg`, or the one its curve implies. An RSA key without `alg`
    /// is taken as RS256, as most identity providers mean it.
    package static func pinnedAlgorithm(_ jwk: [String: Any]) -> SparkgateConfig.Algorithm? {
        if let alg = jwk["alg"] as? String {
            let algorithm = SparkgateConfig.Algorithm(rawValue: alg)
            return algorithm?.isHMAC == true ? nil : algorithm
        }
        switch (jwk["kty"] as? String, jwk["crv"] as? String) {
        case ("EC", "P-256"): return .es256
        case ("EC", "P-384"): return .es384
        case ("OKP", "Ed25519"): return .eddsa
        case ("RSA", _): return .rs256
        default: return nil
        }
    }
}
