import Crypto
import Foundation
import JWTKit
import SparkgateAuth
import SparkgateCore
import Testing

@Suite("Authenticator with real keys")
struct AuthenticatorTests {
    static let now = Date().timeIntervalSince1970

    static var goodClaims: [String: ClaimValue] {
        [
            "iss": .s("iss-1"), "aud": .s("aud-1"), "sub": .s("alice"), "team": .s("analytics"), "exp": .n(now + 600),
            "nbf": .n(now - 5), "iat": .n(now - 5), "jti": .s("jti-ok"),
        ]
    }

    @Test("good tokens verify for every algorithm", arguments: SparkgateConfig.Algorithm.allCases)
    func everyAlgorithm(alg: SparkgateConfig.Algorithm) async throws {
        let keys = try TestKeys()
        let auth = try await keys.authenticator()
        let token = try await keys.sign(Self.goodClaims, with: alg)
        guard case .verified(let v) = auth.authenticate(token[...], now: Self.now) else {
            Issue.record("\(alg.rawValue) token refused")
            return
        }
        #expect(v.identity == Identity(user: "alice", team: "analytics"))
    }

    @Test("a verified token is cached; the cache honours expiry")
    func cache() async throws {
        let keys = try TestKeys()
        let auth = try await keys.authenticator()
        var c = Self.goodClaims
        c["exp"] = .n(Self.now + 100)
        let token = try await keys.sign(c, with: .es256)
        guard case .verified = auth.authenticate(token[...], now: Self.now) else {
            Issue.record("refused")
            return
        }
        #expect(auth.cachedTokens == 1)
        guard case .verified = auth.authenticate(token[...], now: Self.now + 1) else {
            Issue.record("cache miss refused")
            return
        }
        guard case .failed(let f) = auth.authenticate(token[...], now: Self.now + 200) else {
            Issue.record("expired cached token accepted")
            return
        }
        #expect(f.reason == .expired)
    }

    @Test("a connection's memo answers for its token until it expires, another token comes, or the keys change")
    func connectionMemo() async throws {
        let keys = try TestKeys()
        let auth = try await keys.authenticator()
        var c = Self.goodClaims
        c["exp"] = .n(Self.now + 100)
        let token = try await keys.sign(c, with: .es256)
        c["sub"] = .s("bob")
        let other = try await keys.sign(c, with: .es256)
        var memo: TokenMemo?
        let first = auth.authenticate(token[...], now: Self.now, memo: &memo)
        #expect(!first.recalled && memo != nil)
        let again = auth.authenticate(token[...], now: Self.now + 1, memo: &memo)
        #expect(again.recalled)
        guard case .verified(let v) = again.outcome else {
            Issue.record("memo refused its own token")
            return
        }
        #expect(v.identity.user == "alice")
        // The token as it arrives, a slice of its header value, is recalled by its bytes alone.
        let header = "Bearer " + token
        #expect(auth.authenticate(header.dropFirst(7), now: Self.now + 1, memo: &memo).recalled)
        // The same length and one byte different (a forged signature): compared in full, never recalled.
        let forged = String(token.dropLast()) + (token.last == "A" ? "B" : "A")
        let tampered = auth.authenticate(forged[...], now: Self.now + 1, memo: &memo)
        #expect(!tampered.recalled)
        if case .verified = tampered.outcome { Issue.record("a forged token was accepted") }
        _ = auth.authenticate(token[...], now: Self.now + 1, memo: &memo)
        // Another token on the connection is verified as such, never answered with the memo's identity.
        let switched = auth.authenticate(other[...], now: Self.now + 1, memo: &memo)
        guard case .verified(let b) = switched.outcome else {
            Issue.record("second token refused")
            return
        }
        #expect(!switched.recalled && b.identity.user == "bob")
        // Expired: refused, and the memo forgotten.
        let late = auth.authenticate(other[...], now: Self.now + 200, memo: &memo)
        guard case .failed(let f) = late.outcome else {
            Issue.record("expired token accepted from the memo")
            return
        }
        #expect(f.reason == .expired && !late.recalled && memo == nil)
        // A key ring swap (JWKS refresh) without the token's key: the memo no longer answers.
        _ = auth.authenticate(token[...], now: Self.now, memo: &memo)
        auth.replaceKeys(KeyRing([]))
        let afterSwap = auth.authenticate(token[...], now: Self.now + 2, memo: &memo)
        #expect(!afterSwap.recalled)
        if case .verified = afterSwap.outcome { Issue.record("a token whose key is gone still verified") }
    }

    /// Each bad token with the reason Sparkgate must give.
    static func badTokens(_ keys: TestKeys) async throws -> [(String, String, AuthFailure.Reason, String)] {
        let good = try await keys.sign(goodClaims, with: .es256)
        let parts = good.split(separator: ".").map(String.init)
        let es256 = keys.key(.es256)
        let publicPEM = try String(contentsOfFile: es256.publicKey!, encoding: .utf8)
        func claims(_ mutate: (inout [String: ClaimValue]) -> Void) -> [String: ClaimValue] {
            var c = goodClaims
            mutate(&c)
            return c
        }
        func signed(_ mutate: (inout [String: ClaimValue]) -> Void) async throws -> String {
            try await keys.sign(claims(mutate), with: .es256)
        }
        let header = { (json: String) in Base64URL.encode(Array(json.utf8)) }
        let payloadJSON = String(decoding: Base64URL.decode(Array(parts[1].utf8))!, as: UTF8.self)

        // HS256 over the ES256 public key PEM, under the ES256 key's kid: the classic algorithm confusion.
        let confusionHeader = #"{"alg":"HS256","kid":"\#(es256.kid)","typ":"JWT"}"#
        let confusionInput = Array("\(header(confusionHeader)).\(parts[1])".utf8)
        let confusionSig = Array(
            HMAC<SHA256>.authenticationCode(for: confusionInput, using: SymmetricKey(data: Array(publicPEM.utf8))))

        var out: [(String, String, AuthFailure.Reason, String)] = [
            (
                "alg none",
                TestKeys.handmade(header: #"{"alg":"none","kid":"k-es256"}"#, payload: payloadJSON, signature: [1]),
                .algorithm, "'none' is not accepted"
            ),
            (
                "HS256 with the ES256 public key as secret",
                "\(header(confusionHeader)).\(parts[1]).\(Base64URL.encode(confusionSig))", .algorithm,
                "pinned to ES256"
            ),
            (
                "alg swapped in the header",
                "\(header(#"{"alg":"ES384","kid":"k-es256","typ":"JWT"}"#)).\(parts[1]).\(parts[2])", .algorithm,
                "pinned to ES256"
            ),
            (
                "tampered payload",
                "\(parts[0]).\(Base64URL.encode(Array(payloadJSON.replacingOccurrences(of: "alice", with: "admin").utf8))).\(parts[2])",
                .signature, "does not verify"
            ),
            (
                "tampered kid (another ES key)",
                "\(header(#"{"alg":"ES384","kid":"k-es384","typ":"JWT"}"#)).\(parts[1]).\(parts[2])", .signature,
                "does not verify"
            ),
            (
                "unknown kid", "\(header(#"{"alg":"ES256","kid":"k9","typ":"JWT"}"#)).\(parts[1]).\(parts[2])",
                .unknownKey, "unknown key id 'k9'"
            ),
            ("expired", try await signed { $0["exp"] = .n(now - 3600) }, .expired, "token expired at"),
            ("nbf in the future", try await signed { $0["nbf"] = .n(now + 3600) }, .notYetValid, "not valid before"),
            ("just beyond leeway", try await signed { $0["exp"] = .n(now - 31) }, .expired, "expired"),
            (
                "wrong iss", try await signed { $0["iss"] = .s("someone-else") }, .issuer,
                "issuer 'someone-else' not accepted"
            ),
            ("missing aud", try await signed { $0["aud"] = nil }, .audience, "no 'aud'"),
            ("wrong aud", try await signed { $0["aud"] = .s("x") }, .audience, "audience 'x' not accepted"),
            ("missing user claim", try await signed { $0["sub"] = nil }, .claims, "no 'sub' claim"),
            ("missing team claim", try await signed { $0["team"] = nil }, .claims, "no 'team' claim"),
            ("non-string user claim", try await signed { $0["sub"] = .n(7) }, .claims, "must be a string"),
            ("non-string team claim", try await signed { $0["team"] = .a(["a"]) }, .claims, "must be a string"),
            ("revoked jti", try await signed { $0["jti"] = .s("jti-revoked") }, .revoked, "has been revoked"),
            ("100 KB token", String(repeating: "A", count: 100_000), .tooLarge, "is over auth.max_token_bytes (8192)"),
            ("two segments", "\(parts[0]).\(parts[1])", .malformed, "3 dot-separated parts"),
            ("four segments", good + ".x", .malformed, "3 dot-separated parts"),
            ("bad base64", "\(parts[0]).\(parts[1]).***", .malformed, "not valid base64url"),
            ("empty token", "", .malformed, "3 dot-separated parts"),
            ("empty signature", "\(parts[0]).\(parts[1]).", .signature, "empty signature"),
            (
                "crit header", "\(header(#"{"alg":"ES256","kid":"k-es256","crit":["exp"]}"#)).\(parts[1]).\(parts[2])",
                .malformed, "'crit'"
            ),
            (
                "kid not a string", "\(header(#"{"alg":"ES256","kid":5}"#)).\(parts[1]).\(parts[2])", .malformed,
                "'kid' must be a string"
            ),
            (
                "no kid with many keys", "\(header(#"{"alg":"ES256"}"#)).\(parts[1]).\(parts[2])", .unknownKey,
                "no 'kid'"
            ),
            (
                "header not JSON", "\(Base64URL.encode(Array("nope".utf8))).\(parts[1]).\(parts[2])", .malformed,
                "header is not a JSON object"
            ),
        ]
        let other = try TestKeys()
        let foreign = try await other.sign(goodClaims, with: .es256)
        out.append(("signed by a different key with the same kid", foreign, .signature, "does not verify"))
        return out
    }

    @Test("at least 25 bad tokens fail, each with its reason and never echoing the token")
    func badTokens() async throws {
        let keys = try TestKeys()
        let auth = try await keys.authenticator(revoked: ["jti-revoked"])
        let table = try await Self.badTokens(keys)
        #expect(table.count >= 25)
        for (name, token, reason, fragment) in table {
            let failure: AuthFailure
            switch auth.authenticate(token[...], now: Self.now) {
            case .verified:
                Issue.record("\(name): accepted")
                continue
            case .unknownKey(let kid): failure = Authenticator.unknownKeyFailure(kid)
            case .failed(let f): failure = f
            }
            #expect(failure.reason == reason, "\(name): \(failure.reason) \(failure.message)")
            #expect(failure.message.contains(fragment), "\(name): \(failure.message)")
            if token.count > 20 { #expect(!failure.message.contains(token), "\(name) echoes the token") }
            #expect(failure.error.code == .unauthenticated)
        }
    }

    @Test("a JWKS key removed by a reload stops verifying, even for cached tokens")
    func jwksRemoval() async throws {
        let keys = try TestKeys()
        let jwksText = try await Self.jwks(for: keys.key(.es256))
        let document = try await JWKSDocument.parse(Data(jwksText.utf8), origin: "test")
        #expect(document.keys.map(\.kid) == ["k-es256"])
        let auth = Authenticator(
            policy: ClaimsPolicy(issuer: "iss-1", audience: "aud-1"), maxTokenBytes: 8192, keys: KeyRing(document.keys))
        let token = try await keys.sign(Self.goodClaims, with: .es256)
        guard case .verified = auth.authenticate(token[...], now: Self.now) else {
            Issue.record("JWKS key refused")
            return
        }
        auth.replaceKeys(KeyRing([]))
        guard case .unknownKey("k-es256") = auth.authenticate(token[...], now: Self.now) else {
            Issue.record("removed key still verifies")
            return
        }
    }

    @Test("JWKS parsing pins algorithms and skips keys it cannot use")
    func jwksParsing() async throws {
        let text =
            #"{"keys":[{"kty":"EC","crv":"P-256","kid":"enc","use":"enc","x":"AA","y":"AA"},{"kty":"oct","kid":"h","k":"c2VjcmV0","alg":"HS256"},{"kid":"nokty"},{"kty":"EC","crv":"P-256"}]}"#
        let document = try await JWKSDocument.parse(Data(text.utf8), origin: "test")
        #expect(document.keys.isEmpty)
        #expect(document.skipped.count == 4)
        #expect(JWKSDocument.pinnedAlgorithm(["kty": "RSA"]) == .rs256)
        #expect(JWKSDocument.pinnedAlgorithm(["kty": "OKP", "crv": "Ed25519"]) == .eddsa)
        #expect(JWKSDocument.pinnedAlgorithm(["kty": "oct", "alg": "HS256"]) == nil)  // secrets never come from a JWKS
    }

    @Test("HMAC secrets shorter than 32 bytes are refused, naming the key")
    func shortSecret() async throws {
        let keys = try TestKeys()
        let path = try keys.write("short.secret", "too-short")
        var failure: KeyLoader.Failure?
        do {
            _ = try await KeyLoader.load([.init(kid: "h", algorithm: .hs256, secretFile: path)])
        } catch {
            failure = error
        }
        #expect(failure?.key == "auth.keys[0].secret_file")
        #expect(failure?.message.contains("an HS256 secret needs at least 32") == true)
    }

    static func jwks(for key: SparkgateConfig.Key) async throws -> String {
        let pem = try String(contentsOfFile: key.publicKey!, encoding: .utf8)
        let pub = try ES256PublicKey(pem: pem)
        let p = pub.parameters!
        return
            #"{"keys":[{"kty":"EC","crv":"P-256","kid":"\#(key.kid)","alg":"ES256","use":"sig","x":"\#(p.x)","y":"\#(p.y)"}]}"#
    }
}
