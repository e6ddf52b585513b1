import JWTKit
import SparkgateCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Verifies bearer tokens as `sparkgate serve` does: size, structure, algorithm pinned per key, signature
/// (jwt-kit), then claims. Synchronous, so the event loop never hops to verify a cached token.
public final class Authenticator: Sendable {
    public enum Outcome: Sendable {
        case verified(VerifiedToken)
        case failed(AuthFailure)
        /// The token names a key id no loaded key has; a JWKS refresh may find it.
        case unknownKey(String)
    }

    public let policy: ClaimsPolicy
    public let maxTokenBytes: Int
    private let ring: Mutex<KeyRing>
    private let cache = TokenCache()
    /// Counts key ring swaps: a connection's memo of its token holds only while the ring is the one it saw.
    private let keysGeneration = Atomic<UInt64>(0)

    public init(policy: ClaimsPolicy, maxTokenBytes: Int, keys: KeyRing) {
        self.policy = policy
        self.maxTokenBytes = maxTokenBytes
        self.ring = Mutex(keys)
    }

    public var keys: KeyRing { ring.withLock { $0 } }

    /// Swaps the key ring (a JWKS refresh). Cached tokens whose key is gone stop verifying at their next use.
    public func replaceKeys(_ keys: KeyRing) {
        ring.withLock { $0 = keys }
        keysGeneration.add(1, ordering: .releasing)
    }

    /// `authenticate`, remembering the last token verified on one connection in `memo`: a client sends the
    /// same token on every call, and then a byte comparison stands in for the hash, the locks and the lookups.
    /// The memo holds while the token is unexpired and the key ring unchanged; the authenticator itself is
    /// replaced on reload, and its memos with it (the owner keeps the memo beside the authenticator it used).
    /// `recalled` says the memo answered (the token is the one verified before on this connection).
    public func authenticate(
        _ token: Substring, now: Double, memo: inout TokenMemo?
    ) -> (outcome: Outcome, recalled: Bool) {
        let generation = keysGeneration.load(ordering: .acquiring)
        if let known = memo, known.generation == generation, now <= known.verified.expiresAt + policy.leewaySeconds,
            Self.sameBytes(token, known.token)
        {
            return (.verified(known.verified), true)
        }
        let outcome = authenticate(token, now: now)
        if case .verified(let verified) = outcome {
            memo = TokenMemo(token: String(token), verified: verified, generation: generation)
        } else {
            memo = nil
        }
        return (outcome, false)
    }

    /// One `memcmp` over contiguous bytes: comparing the two UTF-8 views element by element costs microseconds
    /// for a JWT, on every call.
    static func sameBytes(_ token: Substring, _ known: String) -> Bool {
        var token = token
        var known = known
        return token.withUTF8 { a in
            known.withUTF8 { b in
                a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
            }
        }
    }

    public func authenticate(_ token: Substring, now: Double) -> Outcome {
        guard token.utf8.count <= maxTokenBytes else {
            return .failed(
                AuthFailure(
                    .tooLarge, "token of \(token.utf8.count) bytes is over auth.max_token_bytes (\(maxTokenBytes))"))
        }
        let cacheKey = TokenCache.key(token)
        if let hit = cache.lookup(cacheKey) {
            if now > hit.token.expiresAt + policy.leewaySeconds {
                cache.remove(cacheKey)
                return .failed(
                    AuthFailure(
                        .expired, "token expired at \(Timestamp.rfc3339(hit.token.expiresAt)); ask for a new one"))
            }
            if ring.withLock({ $0.keys[hit.kid] != nil }) { return .verified(hit.token) }
            cache.remove(cacheKey)
        }
        let jwt: CompactJWT
        switch CompactJWT.parse(token, maxBytes: maxTokenBytes) {
        case .success(let parsed): jwt = parsed
        case .failure(let failure): return .failed(failure)
        }
        let ring = self.ring.withLock { $0 }
        let key: VerificationKey
        if let kid = jwt.keyID {
            guard let found = ring.keys[kid] else { return .unknownKey(kid) }
            key = found
        } else if ring.keys.count == 1, let only = ring.keys.values.first {
            key = only
        } else {
            return .failed(
                AuthFailure(
                    .unknownKey,
                    "token header has no 'kid'; Sparkgate has \(ring.keys.count) keys and needs to know which one signed it"
                ))
        }
        guard jwt.algorithm == key.algorithm.rawValue else {
            return .failed(
                AuthFailure(
                    .algorithm,
                    "token algorithm '\(ClaimsPolicy.clipped(jwt.algorithm))' does not match key '\(key.kid)', which is pinned to \(key.algorithm.rawValue)"
                ))
        }
        let valid: Bool
        do {
            valid = try key.verifier.verify(jwt.signature, signs: jwt.signingInput)
        } catch {
            valid = false
        }
        guard valid else {
            return .failed(AuthFailure(.signature, "token signature does not verify with key '\(key.kid)'"))
        }
        switch policy.verify(jwt.claims, now: now) {
        case .success(let verified):
            cache.insert(cacheKey, TokenCache.Entry(token: verified, kid: key.kid), now: now)
            return .verified(verified)
        case .failure(let failure):
            return .failed(failure)
        }
    }

    /// The failure to report for a key id that is still unknown after any refresh.
    public static func unknownKeyFailure(_ kid: String) -> AuthFailure {
        AuthFailure(
            .unknownKey,
            "unknown key id '\(ClaimsPolicy.clipped(kid))'; the token was signed by a key Sparkgate does not trust")
    }

    package var cachedTokens: Int { cache.count }
}

/// The last token a connection verified (`Authenticator.authenticate(_:now:memo:)`).
public struct TokenMemo: Sendable {
    let token: String
    let verified: VerifiedToken
    let generation: UInt64
}
