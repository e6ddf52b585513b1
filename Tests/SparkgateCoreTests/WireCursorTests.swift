import SparkgateCore
import SparkgateTestSupport
import Testing

@Suite("Protobuf wire cursor")
struct WireCursorTests {
    func fields(_ bytes: [UInt8]) throws -> [WireField] {
        try bytes.withRaw { raw in
            var c = WireCursor(raw)
            var out: [WireField] = []
            while let f = try c.next() { out.append(f) }
            return out
        }
    }

    @Test("reads varint, fixed and length-delimited fields with their offsets")
    func readsFields() throws {
        // field 1 varint 300, field 2 "hi", field 3 fixed32, field 4 fixed64
        let bytes: [UInt8] = [0x08, 0xAC, 0x02, 0x12, 0x02, 0x68, 0x69, 0x1D, 1, 2, 3, 4, 0x21, 1, 2, 3, 4, 5, 6, 7, 8]
        let f = try fields(bytes)
        #expect(f.map(\.number) == [1, 2, 3, 4])
        #expect(f[0].varint == 300)
        #expect(f[1].value == 5..<7)
        #expect(f[1].range == 3..<7)
        #expect(f[2].wireType == .fixed32 && f[2].range == 7..<12)
        #expect(f[3].wireType == .fixed64 && f[3].range == 12..<21)
    }

    @Test("a length past the end is truncation, not an out-of-bounds read")
    func truncatedLength() {
        #expect(throws: WireError.truncated) { try fields([0x12, 0x05, 0x61]) }
        #expect(throws: WireError.truncated) { try fields([0x12]) }
        #expect(throws: WireError.truncated) { try fields([0x08]) }
        #expect(throws: WireError.truncated) { try fields([0x1D, 1, 2]) }
    }

    @Test("a varint longer than 10 bytes is malformed")
    func longVarint() {
        #expect(throws: WireError.malformedVarint) { try fields([0x08] + [UInt8](repeating: 0xFF, count: 10) + [0x01]) }
    }

    @Test("field number 0 and wire types 6 and 7 are refused")
    func invalidKeys() {
        #expect(throws: WireError.invalidFieldNumber) { try fields([0x00, 0x00]) }
        #expect(throws: WireError.invalidWireType(6)) { try fields([0x0E]) }
        #expect(throws: WireError.invalidWireType(7)) { try fields([0x0F]) }
    }

    @Test("groups are skipped when balanced and refused when not")
    func groups() throws {
        // field 5 start group, inner field 1 varint, field 5 end group, then field 2 "x"
        let ok: [UInt8] = [0x2B, 0x08, 0x01, 0x2C, 0x12, 0x01, 0x78]
        #expect(try fields(ok).map(\.number) == [5, 2])
        #expect(throws: WireError.unbalancedGroup) { try fields([0x2B, 0x34]) }
        #expect(throws: WireError.unbalancedGroup) { try fields([0x2C]) }
        let deep = [UInt8](repeating: 0x2B, count: 100)
        #expect(throws: WireError.nestingTooDeep) { try fields(deep) }
    }

    @Test("random bytes never crash the cursor or the envelope readers")
    func fuzz() {
        var rng = SplitMix64(seed: 0x5eed)
        var parsed = 0
        for round in 0..<20_000 {
            let count = Int(rng.next() % 96)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            // Half the time, start from a real message and flip bytes, which reaches deeper paths.
            if round % 2 == 0 {
                let seed = Fixtures.bytes(
                    [
                        "ExecutePlanRequest-0.bin", "ConfigRequest-2.bin", "ExecutePlanResponse-2.bin",
                        "AddArtifactsRequest-0.bin",
                    ][round / 2 % 4])
                bytes = seed
                for _ in 0..<(1 + Int(rng.next() % 4)) where !bytes.isEmpty {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
                if rng.next() % 3 == 0 { bytes.removeLast(Int(rng.next() % UInt64(bytes.count + 1))) }
            }
            for method in SparkConnectMethod.known {
                bytes.withRaw { raw in
                    if (try? RequestEnvelope.read(raw, method: method)) != nil { parsed += 1 }
                    _ = try? ResponseEnvelope.read(raw, method: method)
                    if let envelope = try? RequestEnvelope.read(raw, method: method) {
                        // A rewrite of whatever parsed must itself parse, with the new user in place.
                        let out = RequestRewrite(userID: "u").edits(for: envelope, in: raw).applied(to: raw)
                        let again = out.withRaw { try? RequestEnvelope.read($0, method: method) }
                        #expect(again?.clientUserID == "u")
                    }
                }
            }
        }
        #expect(parsed > 1000)
    }
}
