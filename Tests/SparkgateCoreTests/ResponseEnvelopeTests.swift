import SparkgateCore
import Testing

@Suite("Response envelope and rewrite")
struct ResponseEnvelopeTests {
    @Test(
        "Arrow bytes, rows and result_complete agree with protobuf on recorded ExecutePlan responses",
        arguments: Fixtures.names("ExecutePlanResponse"))
    func executeResponses(name: String) throws {
        let expected = Fixtures.expected[name]!
        let envelope = try Fixtures.bytes(name).withRaw { try ResponseEnvelope.read($0, method: .executePlan) }
        #expect(envelope.arrow.bytes == expected["arrow_bytes"] as! Int)
        #expect(Int(envelope.arrow.rows) == expected["arrow_rows"] as! Int)
        #expect(envelope.resultComplete == expected["result_complete"] as! Bool)
        #expect(envelope.sessionIDFields.count == 1)
    }

    @Test("chunked Arrow batches count rows once, on the last chunk")
    func chunkedBatches() throws {
        func response(rows: UInt64, data: Int, chunk: UInt64?, of chunks: UInt64?) -> [UInt8] {
            var batch: [UInt8] = []
            WireEncoding.appendTag(field: 1, wireType: .varint, to: &batch)
            WireEncoding.appendVarint(rows, to: &batch)
            WireEncoding.appendLengthDelimited(field: 2, [UInt8](repeating: 1, count: data), to: &batch)
            if let chunk, let chunks {
                WireEncoding.appendTag(field: 4, wireType: .varint, to: &batch)
                WireEncoding.appendVarint(chunk, to: &batch)
                WireEncoding.appendTag(field: 5, wireType: .varint, to: &batch)
                WireEncoding.appendVarint(chunks, to: &batch)
            }
            var m: [UInt8] = []
            WireEncoding.appendString(field: 1, "00112233-4455-6677-8899-aabbccddeeff", to: &m)
            WireEncoding.appendLengthDelimited(field: 2, batch, to: &m)
            return m
        }
        var rows: Int64 = 0
        var bytes = 0
        for i in 0..<3 {
            let e = try response(rows: 1000, data: 64, chunk: UInt64(i), of: 3).withRaw {
                try ResponseEnvelope.read($0, method: .reattachExecute)
            }
            rows += e.arrow.rows
            bytes += e.arrow.bytes
        }
        #expect(rows == 1000)
        #expect(bytes == 192)
        let plain = try response(rows: 7, data: 10, chunk: nil, of: nil).withRaw {
            try ResponseEnvelope.read($0, method: .executePlan)
        }
        #expect(plain.arrow == ArrowBatchCount(bytes: 10, rows: 7))
        let zeroChunks = try response(rows: 7, data: 10, chunk: 0, of: 0).withRaw {
            try ResponseEnvelope.read($0, method: .executePlan)
        }
        #expect(zeroChunks.arrow.rows == 7)
    }

    @Test(
        "the client's session id is written back in place, in every response kind",
        arguments: Fixtures.expected.keys.filter { $0.contains("Response-") }.sorted())
    func writesClientSessionBack(name: String) throws {
        let kind = String(name.split(separator: "-")[0])
        let method = Fixtures.method(ofKind: kind)
        let original = Fixtures.bytes(name)
        let clientID = "ffffffff-eeee-4ddd-8ccc-bbbbbbbbbbbb"
        let out = try original.withRaw { raw in
            let envelope = try ResponseEnvelope.read(raw, method: method)
            #expect(!envelope.sessionIDFields.isEmpty)
            let edits = ResponseRewrite(clientSessionID: clientID).edits(for: envelope, method: method)
            #expect(edits.allSatisfy { $0.lengthChange == 0 })
            return edits.applied(to: raw)
        }
        #expect(out.count == original.count)
        let reread = try out.withRaw { raw -> String? in
            let e = try ResponseEnvelope.read(raw, method: method)
            return e.sessionIDFields.last.map { r in
                var c = WireCursor(raw, range: r)
                return (try? c.next()).flatMap { $0 }.map { c.string($0) }
            } ?? nil
        }
        #expect(reread == clientID)
        // Only the session id bytes changed.
        let differing = zip(original, out).filter { $0 != $1 }.count
        #expect(differing > 0 && differing <= 36)
    }

    @Test("denied config keys lose their value; get_all drops them")
    func configRedaction() throws {
        let policy = ConfigPolicy(denyKeys: ["spark.sql.shuffle.*", "*memory*"])
        let original = Fixtures.bytes("ConfigResponse-4.bin")  // get_all
        for drop in [true, false] {
            let out = try original.withRaw { raw in
                let envelope = try ResponseEnvelope.read(raw, method: .config)
                return ResponseRewrite(configPolicy: policy, dropDeniedPairs: drop).edits(
                    for: envelope, method: .config
                ).applied(to: raw)
            }
            let pairs = try out.withRaw { try ResponseEnvelope.read($0, method: .config).configPairs }
            let expectedPairs = (Fixtures.expected["ConfigResponse-4.bin"]!["pairs"] as! [[Any]]).map {
                $0[0] as! String
            }
            let denied = expectedPairs.filter(policy.denies)
            #expect(denied.count >= 2)
            if drop {
                #expect(pairs.map(\.key) == expectedPairs.filter { !policy.denies($0) })
            } else {
                #expect(pairs.map(\.key) == expectedPairs)
                #expect(pairs.filter { policy.denies($0.key) }.allSatisfy { $0.value == nil })
                #expect(pairs.filter { !policy.denies($0.key) }.allSatisfy { $0.value != nil })
            }
        }
    }

    @Test("interrupted operation ids are read from InterruptResponse")
    func interruptedIDs() throws {
        var m: [UInt8] = []
        WireEncoding.appendString(field: 1, "00112233-4455-6677-8899-aabbccddeeff", to: &m)
        WireEncoding.appendString(field: 2, "op-1", to: &m)
        WireEncoding.appendString(field: 2, "op-2", to: &m)
        WireEncoding.appendString(field: 3, "server-side", to: &m)
        #expect(try m.withRaw { try ResponseEnvelope.read($0, method: .interrupt) }.interruptedIDs == ["op-1", "op-2"])
    }
}
