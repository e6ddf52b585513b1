import SparkgateCore
import SparkgateTestSupport
import Testing

@Suite("Config policy globs")
struct ConfigPolicyTests {
    @Test("the default deny list covers the backend token and secret-looking keys, case-insensitively")
    func defaults() {
        let p = ConfigPolicy(denyKeys: ConfigPolicy.defaultDenyKeys)
        #expect(p.denies("spark.connect.authenticate.token"))
        #expect(p.denies("spark.hadoop.fs.s3a.secret.key"))
        #expect(p.denies("spark.ssl.keyStorePassword"))
        #expect(p.denies("spark.hadoop.google.cloud.auth.service.account.json.Credentials"))
        #expect(!p.denies("spark.sql.shuffle.partitions"))
        // Keys that switch off authorization or load code, and object-store keys in their usual spellings.
        for key in [
            "spark.sql.optimizer.excludedRules", "spark.sql.extensions", "spark.plugins", "spark.jars",
            "spark.jars.packages",
            "spark.hadoop.fs.s3a.access.key", "spark.hadoop.fs.s3a.session.token",
            "fs.azure.account.key.acct.dfs.core.windows.net",
            "spark.hadoop.fs.azure.account.key.acct.blob.core.windows.net",
        ] {
            #expect(p.denies(key), "\(key)")
        }
        // Any case, ASCII or not; and a pattern's letters never match other characters.
        #expect(p.denies("SPARK.CONNECT.AUTHENTICATE.TOKEN") && p.denies("spark.hadoop.Ünicode.PASSWORD"))
        #expect(p.denies("spark.jdbc.pässwörd.PASSWORD") && !p.denies("spark.sql.shuffle.PARTITIONS"))
        #expect(!p.denies("spark.plugin[") && !p.denies("SPARK.PLUGINS@"))
        // Patterns are anchored: a key that merely starts like a denied one is not denied.
        #expect(!p.denies("spark.pluginsDisabled") && !p.denies("spark.sql.extensionsX"))
        #expect(ConfigPolicy.defaultDenied.allSatisfy { !$0.reason.isEmpty })
    }

    @Test("globs: star, question mark, anchoring and backtracking")
    func globs() {
        func m(_ p: String, _ t: String) -> Bool { ConfigPolicy.glob(Array(p.utf8), matches: Array(t.utf8)) }
        #expect(m("a*b", "ab") && m("a*b", "axxb") && !m("a*b", "axxbc"))
        #expect(m("*", "") && m("*", "anything") && !m("", "x") && m("", ""))
        #expect(m("a?c", "abc") && !m("a?c", "ac"))
        #expect(m("*ab*ab*", "xxabyyabzz") && !m("*ab*ab*", "xxabyy"))
        #expect(m("spark.sql.shuffle.*", "spark.sql.shuffle.partitions"))
        #expect(!m("spark.sql.shuffle.*", "spark.sql.shufflepartitions"))
        // Pathological input stays fast (linear backtracking).
        let long = String(repeating: "a", count: 5000)
        #expect(!m(String(repeating: "*a", count: 50) + "b", long))
    }
}

@Suite("gRPC helpers")
struct GRPCHelperTests {
    @Test("grpc-timeout parses every unit and refuses malformed values")
    func timeouts() {
        #expect(GRPCTimeout.parse("10S") == .seconds(10))
        #expect(GRPCTimeout.parse("600000m") == .seconds(600))
        #expect(GRPCTimeout.parse("2H") == .seconds(7200))
        #expect(GRPCTimeout.parse("3M") == .seconds(180))
        #expect(GRPCTimeout.parse("5u") == .microseconds(5))
        #expect(GRPCTimeout.parse("7n") == .nanoseconds(7))
        #expect(GRPCTimeout.parse("99999999H") == .seconds(99_999_999 * 3600))
        // Non-ASCII digits and units, and a digit with a combining mark, are not digits.
        for bad in [
            "", "S", "10", "10s", "123456789S", "-1S", "1.5S", "1 S", "\u{FF11}S", "1\u{301}S", "1\u{FF33}", "+1S",
        ] {
            #expect(GRPCTimeout.parse(bad) == nil, "\(bad)")
        }
    }

    @Test("grpc-timeout read as bytes answers what reading it as Characters does, for hostile values too")
    func timeoutAgainstCharacterReading() {
        // The reading it replaced, kept as the reference: Characters, Unicode digit properties, Int64's parser.
        func reference(_ value: String) -> Duration? {
            guard let unit = value.last, value.count >= 2, value.count <= 9 else { return nil }
            let digits = value.dropLast()
            guard digits.allSatisfy({ $0.isASCII && $0.isNumber }), let amount = Int64(digits) else { return nil }
            let units: [Character: Duration] = [
                "H": .seconds(3600), "M": .seconds(60), "S": .seconds(1), "m": .milliseconds(1), "u": .microseconds(1),
                "n": .nanoseconds(1),
            ]
            return units[unit].map { $0 * amount }
        }
        let seed = UInt64.random(in: 0...UInt64.max)
        print("grpc-timeout differential seed \(seed)")
        var rng = SplitMix64(seed: seed)
        let pieces = [
            "0", "1", "7", "9", "H", "M", "S", "m", "u", "n", "s", "-", "+", " ", ".", "\u{FF11}", "\u{301}",
            "\u{0660}",
            "\u{1F600}", "\0", "\u{7F}",
        ]
        for _ in 0..<20_000 {
            let value = (0..<Int(rng.next() % 12)).map { _ in pieces[Int(rng.next() % UInt64(pieces.count))] }.joined()
            #expect(GRPCTimeout.parse(value) == reference(value), "\(value.unicodeScalars.map { $0.value })")
        }
    }

    @Test("grpc-timeout encoding round-trips and fits 8 digits")
    func timeoutRoundTrip() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<2000 {
            let d = Duration.nanoseconds(Int64(rng.next() % 1_000_000_000_000_000))
            let text = GRPCTimeout.encode(d)
            #expect(text.count <= 9)
            let back = GRPCTimeout.parse(text)!
            #expect(back >= d)  // rounded up, never shorter
        }
        #expect(GRPCTimeout.parse(GRPCTimeout.encode(.seconds(1))) == .seconds(1))
        #expect(GRPCTimeout.encode(.seconds(1)).count <= 9)
    }

    @Test("grpc-message is percent-encoded outside printable ASCII and round-trips")
    func messages() {
        #expect(GRPCStatusMessage.encode("plain text") == "plain text")
        #expect(GRPCStatusMessage.encode("50%") == "50%25")
        #expect(GRPCStatusMessage.encode("line\nbreak") == "line%0Abreak")
        for s in ["résumé ✓", "100% sure", "\t\u{1}x", "session 0011 belongs to another user"] {
            #expect(GRPCStatusMessage.decode(GRPCStatusMessage.encode(s)) == s)
        }
    }

    @Test("RetryInfo details encode a google.rpc.Status with the delay")
    func retryInfo() throws {
        let bytes = GRPCStatusDetails.encode(.resourceExhausted("slow down", retryAfter: .milliseconds(1500)))!
        let fields = try bytes.withRaw { raw -> [WireField] in
            var c = WireCursor(raw)
            var out: [WireField] = []
            while let f = try c.next() { out.append(f) }
            return out
        }
        #expect(fields[0].number == 1 && fields[0].varint == 8)
        #expect(fields[2].number == 3)
        #expect(String(decoding: bytes, as: UTF8.self).contains("type.googleapis.com/google.rpc.RetryInfo"))
        #expect(GRPCStatusDetails.encode(.resourceExhausted("no retry")) == nil)
    }

    @Test("request heads: POST, application/grpc, a SparkConnectService path")
    func heads() throws {
        var head = RequestHead()
        for (n, v) in [
            (":method", "POST"), (":path", "/spark.connect.SparkConnectService/Config"),
            ("content-type", "application/grpc+proto"), ("grpc-timeout", "10S"),
        ] {
            head.add(name: n, value: v)
        }
        #expect(try head.validate().get() == .config)
        var other = head
        other.path = "/grpc.health.v1.Health/Check"
        #expect(throws: SparkgateError.self) { try other.validate().get() }
        var future = head
        future.path = "/spark.connect.SparkConnectService/SomethingNew"
        #expect(try future.validate().get() == .other("SomethingNew"))
        var get = head
        get.method = "GET"
        #expect((try? get.validate().get()) == nil)
        var badTimeout = RequestHead()
        for (n, v) in [
            (":method", "POST"), (":path", "/spark.connect.SparkConnectService/Config"),
            ("content-type", "application/grpc"), ("grpc-timeout", "soon"),
        ] {
            badTimeout.add(name: n, value: v)
        }
        #expect((try? badTimeout.validate().get()) == nil)
    }

    @Test("metadata policy: pseudo, hop-by-hop, authorization and accept-encoding stop; the rest crosses")
    func metadata() {
        for name in [
            ":path", ":authority", "authorization", "grpc-accept-encoding", "content-length", "connection", "host",
        ] {
            #expect(!MetadataPolicy.forwardsRequestHeader(name), "\(name)")
        }
        for name in ["te", "content-type", "grpc-timeout", "user-agent", "x-custom", "grpc_max_message_size"] {
            #expect(MetadataPolicy.forwardsRequestHeader(name), "\(name)")
        }
        for name in ["grpc-status", "grpc-message", "grpc-status-details-bin", "content-type", "x-trace"] {
            #expect(MetadataPolicy.forwardsResponseHeader(name))
        }
        #expect(!MetadataPolicy.forwardsResponseHeader(":status"))
        #expect(!MetadataPolicy.forwardsResponseHeader("content-length"))
    }
}

@Suite("Session ids")
struct SessionIDTests {
    @Test("UUIDv5 matches Python's uuid.uuid5 for the same namespace and name")
    func uuid5() {
        // python3 -c "import uuid; print(uuid.uuid5(uuid.UUID('6f0f1bd3-5f5a-4b8e-9a51-8a6a3c1e2d47'), 'analytics/alice/00112233-4455-6677-8899-aabbccddeeff'))"
        let ns = SessionNamespace("6f0f1bd3-5f5a-4b8e-9a51-8a6a3c1e2d47")!
        #expect(
            ns.backendID(team: "analytics", user: "alice", clientSessionID: "00112233-4455-6677-8899-aabbccddeeff")
                == PythonReference.uuid5)
    }

    @Test("backend ids differ per user and team, and are stable")
    func separation() {
        let ns = SessionNamespace("6f0f1bd3-5f5a-4b8e-9a51-8a6a3c1e2d47")!
        let s = "00112233-4455-6677-8899-aabbccddeeff"
        let a = ns.backendID(team: "t", user: "alice", clientSessionID: s)
        #expect(a == ns.backendID(team: "t", user: "alice", clientSessionID: s.uppercased()))
        #expect(a != ns.backendID(team: "t", user: "bob", clientSessionID: s))
        #expect(a != ns.backendID(team: "u", user: "alice", clientSessionID: s))
        #expect(a.count == 36 && UUIDText.parse(a) != nil)
        #expect(Array(a.utf8)[14] == UInt8(ascii: "5"))
    }

    @Test("a connection's memo answers exactly what the derivation does, whichever input changes between calls")
    func memo() {
        let first = SessionNamespace("6f0f1bd3-5f5a-4b8e-9a51-8a6a3c1e2d47")!
        let second = SessionNamespace("00000000-5f5a-4b8e-9a51-8a6a3c1e2d47")!
        let s = "00112233-4455-6677-8899-aabbccddeeff"
        let t = "ffeeddcc-4455-6677-8899-aabbccddeeff"
        let memo = SessionNamespace.Memo()
        // Each step changes one input (or none), then goes back: a memo keyed on too little answers a stale id.
        let steps: [(SessionNamespace, String, String, String)] = [
            (first, "t", "alice", s), (first, "t", "alice", s), (first, "t", "bob", s), (first, "t", "alice", s),
            (first, "u", "alice", s), (first, "t", "alice", t), (second, "t", "alice", t), (first, "t", "alice", t),
        ]
        var answers: Set<String> = []
        for (namespace, team, user, session) in steps {
            let remembered = memo.backendID(namespace, team: team, user: user, clientSessionID: session)
            #expect(remembered == namespace.backendID(team: team, user: user, clientSessionID: session))
            answers.insert(remembered)
        }
        #expect(answers.count == 5)
    }

    @Test("UUID text parsing accepts canonical forms only")
    func parsing() {
        #expect(UUIDText.parse("00112233-4455-6677-8899-AABBCCDDEEFF") != nil)
        for bad in [
            "", "00112233445566778899aabbccddeeff", "1-1-1-1-1", "00112233-4455-6677-8899-aabbccddeefg",
            "00112233-4455-6677-8899_aabbccddeeff",
        ] {
            #expect(UUIDText.parse(bad) == nil, "\(bad)")
        }
        var rng = SplitMix64(seed: 1)
        let r = UUIDText.random(using: &rng)
        #expect(UUIDText.format(UUIDText.parse(r)!) == r)
    }
}

/// Values computed by CPython's standard library, to check Sparkgate against an independent implementation.
enum PythonReference {
    /// uuid.uuid5(UUID("6f0f1bd3-5f5a-4b8e-9a51-8a6a3c1e2d47"), "analytics/alice/00112233-4455-6677-8899-aabbccddeeff")
    static let uuid5 = "0b2d2282-326b-55b3-9cfc-783c0c1606c2"
}
