import JWTKit
import SparkgateCore

/// One key tokens may be signed with, pinned to one algorithm: a token must name both its `kid` and
/// exactly this algorithm, so no token can switch a key to another algorithm (HS256 with a public key
/// as the secret, or `none`).
public struct VerificationKey: Sendable {
    public var kid: String
    public var algorithm: SparkgateConfig.Algorithm
    /// jwt-kit's signer for this key; `verify(_:signs:)` is synchronous, so it runs on the event loop.
    public var verifier: any JWTAlgorithm
    /// Where the key came from (`config`, a JWKS file or URL), for logs.
    public var origin: String

    public init(kid: String, algorithm: SparkgateConfig.Algorithm, verifier: any JWTAlgorithm, origin: String) {
        self.kid = kid
        self.algorithm = algorithm
        self.verifier = verifier
        self.origin = origin
    }
}

/// The keys in force, by key id.
public struct KeyRing: Sendable {
    public var keys: [String: VerificationKey]

    public init(_ keys: [VerificationKey] = []) {
        self.keys = Dictionary(keys.map { ($0.kid, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public var isEmpty: Bool { keys.isEmpty }

    /// A ring with `other`'s keys added where this one has no key of that id (configured keys win).
    public func merging(_ other: [VerificationKey]) -> KeyRing {
        var ring = self
        for key in other where ring.keys[key.kid] == nil { ring.keys[key.kid] = key }
        return ring
    }
}
