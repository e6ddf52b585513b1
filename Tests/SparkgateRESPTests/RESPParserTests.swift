import NIOCore
import SparkgateRESP
import SparkgateTestSupport
import Testing

@Suite("RESP parser")
struct RESPParserTests {
    let sample: [UInt8] = Array(
        "+OK\r\n-ERR bad\r\n:42\r\n$5\r\nhe\r\nl\r\n$-1\r\n*3\r\n$3\r\nfoo\r\n:-7\r\n*1\r\n+x\r\n*-1\r\n".utf8)
    let expected: [RESPValue] = [
        .simpleString("OK"), .error("ERR bad"), .integer(42), .bulkString(Array("he\r\nl".utf8)), .bulkString(nil),
        .array([.bulkString(Array("foo".utf8)), .integer(-7), .array([.simpleString("x")])]), .array(nil),
    ]

    @Test("values split at random points parse to the same values, and nothing is consumed until a value is whole")
    func randomSplits() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("RESP split seed \(seed)")
        var rng = SplitMix64(seed: seed)
        let parser = RESPParser()
        for _ in 0..<500 {
            var buffer = ByteBuffer()
            var got: [RESPValue] = []
            var offset = 0
            while offset < sample.count {
                let n = Int.random(in: 1...7, using: &rng)
                buffer.writeBytes(sample[offset..<min(sample.count, offset + n)])
                offset += n
                while let v = try parser.parse(&buffer) { got.append(v) }
            }
            #expect(got == expected, "seed \(seed)")
            #expect(buffer.readableBytes == 0)
        }
    }

    @Test("announced sizes past the bounds and malformed lines are refused before anything is allocated")
    func bounds() {
        let parser = RESPParser(maxBulkBytes: 1024, maxArrayElements: 16, maxDepth: 2)
        for bad in [
            "$999999999\r\n", "*17\r\n", "*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", "?x\r\n", ":12a\r\n", "$-2\r\n",
            "$3\r\nabcX\r\n",
        ] {
            var buffer = ByteBuffer(string: bad)
            #expect(throws: RedisError.self, "\(bad.debugDescription)") { _ = try parser.parse(&buffer) }
        }
        var long = ByteBuffer(string: "+" + String(repeating: "a", count: 70_000))
        #expect(throws: RedisError.self) { _ = try parser.parse(&long) }
    }
}
