import SparkgateCore
import Testing

@Suite("Request envelope on real PySpark bytes")
struct RequestEnvelopeTests {
    static let requestFixtures = Fixtures.expected.keys.filter { $0.contains("Request-") }.sorted()

    @Test("routing fields agree with the protobuf library on every recorded request", arguments: requestFixtures)
    func readsRecordedRequests(name: String) throws {
        let kind = String(name.split(separator: "-")[0])
        let expected = Fixtures.expected[name]!
        let bytes = Fixtures.bytes(name)
        let envelope = try bytes.withRaw { try RequestEnvelope.read($0, method: Fixtures.method(ofKind: kind)) }
        #expect(envelope.sessionID == expected["session_id"] as? String)
        #expect(envelope.clientUserID == expected["user_id"] as? String)
        #expect(envelope.clientType == expected["client_type"] as? String)
        if let op = expected["operation_id"] as? String { #expect(envelope.operationID == op) }
        if let reattachable = expected["reattachable"] as? Bool { #expect(envelope.reattachable == reattachable) }
        if let releaseAll = expected["release_all"] as? Bool { #expect(envelope.releaseAll == releaseAll) }
        if let keys = expected["config_keys"] as? [String] { #expect(envelope.config?.keys == keys) }
        if let artifactBytes = expected["artifact_bytes"] as? Int { #expect(envelope.artifactBytes == artifactBytes) }
        #expect(envelope.length == bytes.count)
    }

    @Test("config operations are classified as PySpark sends them")
    func configKinds() throws {
        let kinds: [String: ConfigOperation.Kind] = [
            "get": .get, "get_with_default": .getWithDefault, "set": .set, "get_all": .getAll,
        ]
        for name in Fixtures.names("ConfigRequest") {
            let op = Fixtures.expected[name]!["config_op"] as! String
            let envelope = try Fixtures.bytes(name).withRaw { try RequestEnvelope.read($0, method: .config) }
            #expect(envelope.config?.kind == kinds[op], "\(name)")
            #expect(envelope.config?.writes == (op == "set"))
        }
    }
}

@Suite("Request rewrite")
struct RequestRewriteTests {
    /// The top-level fields of a message as (number, bytes) pairs.
    func topLevel(_ bytes: [UInt8]) throws -> [(Int, [UInt8])] {
        try bytes.withRaw { raw in
            var c = WireCursor(raw)
            var out: [(Int, [UInt8])] = []
            while let f = try c.next() { out.append((f.number, Array(raw[f.range]))) }
            return out
        }
    }

    func rewrite(_ bytes: [UInt8], method: SparkConnectMethod, _ plan: RequestRewrite) throws -> [UInt8] {
        try bytes.withRaw { raw in
            let envelope = try RequestEnvelope.read(raw, method: method)
            return plan.edits(for: envelope, in: raw).applied(to: raw)
        }
    }

    @Test(
        "the verified user replaces user_id and user_name; every other field keeps its bytes",
        arguments: RequestEnvelopeTests.requestFixtures)
    func replacesUserOnly(name: String) throws {
        let kind = String(name.split(separator: "-")[0])
        let method = Fixtures.method(ofKind: kind)
        let original = Fixtures.bytes(name)
        let out = try rewrite(original, method: method, RequestRewrite(userID: "bob"))
        let envelope = try out.withRaw { try RequestEnvelope.read($0, method: method) }
        #expect(envelope.clientUserID == "bob")
        let before = try topLevel(original).filter { $0.0 != 2 }
        let after = try topLevel(out).filter { $0.0 != 2 }
        #expect(before.map(\.0) == after.map(\.0))
        #expect(before.map(\.1) == after.map(\.1))
    }

    @Test("namespacing swaps every session_id for the backend id, same length, nothing else")
    func swapsSessionID() throws {
        let original = Fixtures.bytes("ExecutePlanRequest-0.bin")
        let backendID = "aaaaaaaa-bbbb-5ccc-8ddd-eeeeeeeeeeee"
        let userOnly = try rewrite(original, method: .executePlan, RequestRewrite(userID: "fixture-user"))
        let out = try rewrite(
            original, method: .executePlan, RequestRewrite(userID: "fixture-user", backendSessionID: backendID))
        // The swap itself is in place: same length, and only the 36 id bytes differ.
        #expect(out.count == userOnly.count)
        #expect(zip(out, userOnly).filter { $0 != $1 }.count <= 36)
        let envelope = try out.withRaw { try RequestEnvelope.read($0, method: .executePlan) }
        #expect(envelope.sessionID == backendID)
        #expect(envelope.operationID == Fixtures.expected["ExecutePlanRequest-0.bin"]!["operation_id"] as? String)
    }

    @Test("a second user_context hidden behind the first cannot smuggle a user id")
    func mergedUserContexts() throws {
        // session_id, user_context{user_id: "mallory"}, user_context{user_id: "alice", extensions: Any{...}}
        var m: [UInt8] = []
        WireEncoding.appendString(field: 1, "00112233-4455-6677-8899-aabbccddeeff", to: &m)
        var uc1: [UInt8] = []
        WireEncoding.appendString(field: 1, "mallory", to: &uc1)
        WireEncoding.appendLengthDelimited(field: 2, uc1, to: &m)
        var any: [UInt8] = []
        WireEncoding.appendString(field: 1, "type.googleapis.com/x", to: &any)
        var uc2: [UInt8] = []
        WireEncoding.appendString(field: 1, "alice", to: &uc2)
        WireEncoding.appendLengthDelimited(field: 999, any, to: &uc2)
        WireEncoding.appendLengthDelimited(field: 2, uc2, to: &m)
        WireEncoding.appendString(field: 4, "client", to: &m)

        let envelope = try m.withRaw { try RequestEnvelope.read($0, method: .config) }
        #expect(envelope.clientUserID == "alice")  // protobuf merge: the last user_id wins
        let out = try rewrite(m, method: .config, RequestRewrite(userID: "bob"))
        let fields = try topLevel(out)
        #expect(fields.filter { $0.0 == 2 }.count == 1)
        let again = try out.withRaw { try RequestEnvelope.read($0, method: .config) }
        #expect(again.clientUserID == "bob")
        #expect(again.userContextKeptFields.count == 1)  // the extension survived
        #expect(again.clientType == "client")
    }

    @Test("a request without user_context gets one")
    func insertsUserContext() throws {
        var m: [UInt8] = []
        WireEncoding.appendString(field: 1, "00112233-4455-6677-8899-aabbccddeeff", to: &m)
        let out = try rewrite(m, method: .analyzePlan, RequestRewrite(userID: "bob"))
        let envelope = try out.withRaw { try RequestEnvelope.read($0, method: .analyzePlan) }
        #expect(envelope.clientUserID == "bob")
        #expect(envelope.sessionID == "00112233-4455-6677-8899-aabbccddeeff")
    }

    @Test("ExecutePlan without operation_id gets one; CloneSession gets a namespaced new_session_id")
    func insertions() throws {
        var m: [UInt8] = []
        WireEncoding.appendString(field: 1, "00112233-4455-6677-8899-aabbccddeeff", to: &m)
        let out = try rewrite(
            m, method: .executePlan,
            RequestRewrite(userID: "u", insertedOperationID: "11111111-2222-4333-8444-555555555555"))
        #expect(
            try out.withRaw { try RequestEnvelope.read($0, method: .executePlan) }.operationID
                == "11111111-2222-4333-8444-555555555555")

        var clone = m
        WireEncoding.appendString(field: 4, "99999999-2222-4333-8444-555555555555", to: &clone)
        let cloned = try rewrite(
            clone, method: .cloneSession,
            RequestRewrite(userID: "u", backendNewSessionID: "bbbbbbbb-2222-5333-8444-555555555555"))
        #expect(
            try cloned.withRaw { try RequestEnvelope.read($0, method: .cloneSession) }.newSessionID
                == "bbbbbbbb-2222-5333-8444-555555555555")
        let inserted = try rewrite(
            m, method: .cloneSession,
            RequestRewrite(userID: "u", backendNewSessionID: "cccccccc-2222-5333-8444-555555555555"))
        #expect(
            try inserted.withRaw { try RequestEnvelope.read($0, method: .cloneSession) }.newSessionID
                == "cccccccc-2222-5333-8444-555555555555")
    }

    @Test("AddArtifacts counts chunk data bytes for batch, begin_chunk and chunk payloads")
    func artifactBytes() throws {
        func chunk(_ n: Int) -> [UInt8] {
            var c: [UInt8] = []
            WireEncoding.appendLengthDelimited(field: 1, [UInt8](repeating: 7, count: n), to: &c)
            WireEncoding.appendTag(field: 2, wireType: .varint, to: &c)
            WireEncoding.appendVarint(12345, to: &c)
            return c
        }
        var single: [UInt8] = []
        WireEncoding.appendString(field: 1, "a.py", to: &single)
        WireEncoding.appendLengthDelimited(field: 2, chunk(100), to: &single)
        var batch: [UInt8] = []
        WireEncoding.appendLengthDelimited(field: 1, single, to: &batch)
        WireEncoding.appendLengthDelimited(field: 1, single, to: &batch)
        var m: [UInt8] = []
        WireEncoding.appendLengthDelimited(field: 3, batch, to: &m)
        #expect(try m.withRaw { try RequestEnvelope.read($0, method: .addArtifacts) }.artifactBytes == 200)

        var begin: [UInt8] = []
        WireEncoding.appendString(field: 1, "big.jar", to: &begin)
        WireEncoding.appendLengthDelimited(field: 4, chunk(300), to: &begin)
        var m2: [UInt8] = []
        WireEncoding.appendLengthDelimited(field: 4, begin, to: &m2)
        #expect(try m2.withRaw { try RequestEnvelope.read($0, method: .addArtifacts) }.artifactBytes == 300)

        var m3: [UInt8] = []
        WireEncoding.appendLengthDelimited(field: 5, chunk(50), to: &m3)
        #expect(try m3.withRaw { try RequestEnvelope.read($0, method: .addArtifacts) }.artifactBytes == 50)
    }
}
