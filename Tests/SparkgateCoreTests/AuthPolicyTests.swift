import SparkgateCore
import SparkgateTestSupport
import Testing

@Suite("Bearer header parsing")
struct BearerTokenTests {
    func token(_ values: [String]) -> Result<Substring, AuthFailure> {
        BearerToken.extract(from: values.map { Substring($0) })
    }

    @Test("accepts Bearer in any case with surrounding spaces")
    func accepts() throws {
        #expect(try token(["Bearer abc.def.ghi"]).get() == "abc.def.ghi")
        #expect(try token(["bearer abc"]).get() == "abc")
        #expect(try token(["BEARER   abc  "]).get() == "abc")
    }

    @Test(
        "refuses missing, empty, other schemes, repeated headers and embedded spaces",
        arguments: [
            ([], AuthFailure.Reason.missing), (["Bearer"], .missing), (["Bearer   "], .missing),
            (["Basic dXNlcjpwYXNz"], .malformed),
            (["Token abc"], .malformed), (["abc.def.ghi"], .malformed), (["Bearer a", "Bearer b"], .malformed),
            (["Bearer a b"], .malformed),
        ])
    func refuses(values: [String], reason: AuthFailure.Reason) {
        guard case .failure(let f) = token(values) else {
            Issue.record("accepted \(values)")
            return
        }
        #expect(f.reason == reason)
    }
}

@Suite("The token of a request: authorization, or authentication from Spark's older JVM clients")
struct RequestTokenTests {
    func head(authorization: [String] = [], authentication: [String] = []) -> RequestHead {
        var head = RequestHead()
        for value in authorization { head.add(name: "authorization", value: value) }
        for value in authentication { head.add(name: "authentication", value: value) }
        return head
    }

    @Test("authentication alone is read as authorization; both with one token are one; its refusals name it")
    func headers() throws {
        #expect(try BearerToken.extract(from: head(authentication: ["Bearer a.b.c"])).get() == "a.b.c")
        #expect(
            try BearerToken.extract(from: head(authorization: ["Bearer a.b.c"], authentication: ["Bearer a.b.c"])).get()
                == "a.b.c")
        guard case .failure(let wrong) = BearerToken.extract(from: head(authentication: ["Basic eA=="])) else {
            Issue.record("accepted Basic")
            return
        }
        #expect(wrong.reason == .malformed && wrong.message.contains("authentication scheme"))
        guard case .failure(let two) = BearerToken.extract(from: head(authentication: ["Bearer a", "Bearer b"])) else {
            Issue.record("accepted two")
            return
        }
        #expect(two.message.contains("exactly one authentication header"))
    }

    @Test("authorization and authentication with different tokens are refused, naming the two headers")
    func different() {
        guard
            case .failure(let failure) = BearerToken.extract(
                from: head(authorization: ["Bearer a.b.c"], authentication: ["Bearer x.y.z"]))
        else {
            Issue.record("two tokens accepted")
            return
        }
        #expect(
            failure.reason == .malformed
                && failure.message.contains("authorization and authentication headers carry different tokens"))
        #expect(BearerToken.size(of: head(authorization: ["Bearer a"], authentication: ["Bearer bb"])) == 17)
        #expect(!MetadataPolicy.forwardsRequestHeader("authentication"))
    }
}

@Suite("Claims policy")
struct ClaimsPolicyTests {
    let policy = ClaimsPolicy(
        issuer: "sparkgate-dev", audience: "spark-connect", leewaySeconds: 30, revokedTokenIDs: ["revoked-1"])
    let now = 1_800_000_000.0

    var good: [String: JSONValue] {
        [
            "iss": .string("sparkgate-dev"), "aud": .string("spark-connect"), "sub": .string("alice"),
            "team": .string("analytics"),
            "exp": .number(now + 3600), "nbf": .number(now - 10), "iat": .number(now - 10), "jti": .string("id-1"),
            "groups": .array([.string("a"), .string("b")]),
        ]
    }

    @Test("a good token maps to its identity")
    func good_() throws {
        let v = try policy.verify(good, now: now).get()
        #expect(v.identity == Identity(user: "alice", team: "analytics", groups: ["a", "b"]))
        #expect(v.expiresAt == now + 3600)
        #expect(v.tokenID == "id-1")
    }

    @Test("audience may be an array that contains ours")
    func audienceArray() throws {
        var c = good
        c["aud"] = .array([.string("other"), .string("spark-connect")])
        #expect((try? policy.verify(c, now: now).get()) != nil)
    }

    @Test("leeway applies to exp and nbf")
    func leeway() {
        var c = good
        c["exp"] = .number(now - 20)
        #expect((try? policy.verify(c, now: now).get()) != nil)
        c["exp"] = .number(now - 31)
        #expect((try? policy.verify(c, now: now).get()) == nil)
        var n = good
        n["nbf"] = .number(now + 29)
        #expect((try? policy.verify(n, now: now).get()) != nil)
    }

    static let cases: [(String, @Sendable (inout [String: JSONValue], Double) -> Void, AuthFailure.Reason, String)] = [
        ("expired", { c, now in c["exp"] = .number(now - 3600) }, .expired, "token expired at 2027-01-15T07:00:00Z"),
        ("no exp", { c, _ in c["exp"] = nil }, .claims, "no 'exp'"),
        ("exp as string", { c, _ in c["exp"] = .string("tomorrow") }, .claims, "must be a number"),
        ("nbf in the future", { c, now in c["nbf"] = .number(now + 600) }, .notYetValid, "not valid before"),
        ("iat in the future", { c, now in c["iat"] = .number(now + 600) }, .notYetValid, "issued in the future"),
        ("wrong issuer", { c, _ in c["iss"] = .string("evil") }, .issuer, "issuer 'evil' not accepted"),
        ("no issuer", { c, _ in c["iss"] = nil }, .issuer, "no 'iss'"),
        ("issuer as number", { c, _ in c["iss"] = .number(1) }, .issuer, "must be a string"),
        ("missing aud", { c, _ in c["aud"] = nil }, .audience, "no 'aud'"),
        ("wrong aud", { c, _ in c["aud"] = .string("x") }, .audience, "audience 'x' not accepted"),
        (
            "aud array without ours", { c, _ in c["aud"] = .array([.string("x"), .string("y")]) }, .audience,
            "not accepted"
        ),
        ("aud as object", { c, _ in c["aud"] = .object([:]) }, .audience, "must be a string or an array"),
        ("missing user", { c, _ in c["sub"] = nil }, .claims, "no 'sub' claim (the user)"),
        ("empty user", { c, _ in c["sub"] = .string("") }, .claims, "must not be empty"),
        ("user as number", { c, _ in c["sub"] = .number(42) }, .claims, "must be a string, not a number"),
        ("missing team", { c, _ in c["team"] = nil }, .claims, "no 'team' claim"),
        ("team as array", { c, _ in c["team"] = .array([.string("a")]) }, .claims, "must be a string, not an array"),
        ("team with control characters", { c, _ in c["team"] = .string("a\nb") }, .claims, "printable"),
        ("groups with numbers", { c, _ in c["groups"] = .array([.number(1)]) }, .claims, "must hold strings"),
        ("jti as number", { c, _ in c["jti"] = .number(3) }, .claims, "'jti' must be a string"),
        ("revoked jti", { c, _ in c["jti"] = .string("revoked-1") }, .revoked, "has been revoked"),
    ]

    @Test("bad claims fail with a reason the user can act on", arguments: 0..<cases.count)
    func badClaims(index: Int) {
        let (name, mutate, reason, message) = Self.cases[index]
        var c = good
        mutate(&c, now)
        guard case .failure(let f) = policy.verify(c, now: now) else {
            Issue.record("\(name) was accepted")
            return
        }
        #expect(f.reason == reason, "\(name)")
        #expect(f.message.contains(message), "\(name): \(f.message)")
    }

    @Test("attacker-chosen claim values are clipped in messages")
    func clipping() {
        var c = good
        c["iss"] = .string(String(repeating: "x", count: 5000))
        guard case .failure(let f) = policy.verify(c, now: now) else {
            Issue.record("accepted")
            return
        }
        #expect(f.message.count < 200)
    }
}

@Suite("Compact JWT parsing")
struct CompactJWTTests {
    func part(_ json: String) -> String { Base64URL.encode(Array(json.utf8)) }

    @Test(
        "structure failures name the part that is wrong",
        arguments: [
            ("", AuthFailure.Reason.malformed), ("a.b", .malformed), ("a.b.c.d", .malformed),
            ("!!.e30.c2ln", .malformed),
        ])
    func structure(token: String, reason: AuthFailure.Reason) {
        guard case .failure(let f) = CompactJWT.parse(token[...], maxBytes: 8192) else {
            Issue.record("accepted \(token)")
            return
        }
        #expect(f.reason == reason)
    }

    @Test("alg none is refused even with a signature")
    func none() {
        let t = "\(part(#"{"alg":"none","kid":"k"}"#)).\(part("{}")).c2ln"
        guard case .failure(let f) = CompactJWT.parse(t[...], maxBytes: 8192) else {
            Issue.record("accepted")
            return
        }
        #expect(f.reason == .algorithm)
        #expect(f.message.contains("'none'"))
    }

    @Test("size is checked before anything is decoded")
    func size() {
        let big = String(repeating: "a", count: 100_000)
        guard case .failure(let f) = CompactJWT.parse(big[...], maxBytes: 8192) else {
            Issue.record("accepted")
            return
        }
        #expect(f.reason == .tooLarge)
    }

    @Test("base64url round-trips and rejects padding and non-canonical tails")
    func base64() {
        var rng = SplitMix64(seed: 3)
        for n in 0..<200 {
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            #expect(Base64URL.decode(Array(Base64URL.encode(bytes).utf8)) == bytes)
        }
        #expect(Base64URL.decode(Array("YQ==".utf8)) == nil)
        #expect(Base64URL.decode(Array("YR".utf8)) == nil)  // trailing bits set
        #expect(Base64URL.decode(Array("Y".utf8)) == nil)
        #expect(Base64URL.decode(Array("YQ".utf8)) == [0x61])
    }
}
