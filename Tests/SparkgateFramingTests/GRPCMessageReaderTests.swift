import NIOCore
import SparkgateFraming
import SparkgateTestSupport
import Testing

@Suite("gRPC message reader")
struct GRPCMessageReaderTests {
    func framed(_ payload: [UInt8]) -> ByteBuffer {
        GRPCMessage.frame(payload: payload).framed
    }

    @Test("messages split across arbitrary frame boundaries come out whole, in order, each after its prefix")
    func reassembly() {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("GRPCMessageReaderTests.reassembly seed \(seed)")
        var rng = SplitMix64(seed: seed)
        let payloads = (0..<50).map { i in
            (0..<Int.random(in: 0...20_000, using: &rng)).map { _ in UInt8(truncatingIfNeeded: i) }
        }
        var stream = ByteBuffer()
        for p in payloads {
            var f = framed(p)
            stream.writeBuffer(&f)
        }
        var reader = GRPCMessageReader()
        var out: [[UInt8]] = []
        var announced: [Int] = []
        while stream.readableBytes > 0 {
            let n = min(stream.readableBytes, Int.random(in: 1...9000, using: &rng))
            reader.append(stream.readSlice(length: n)!)
            while let item = reader.next() {
                switch item {
                case .prefix(let length, let compressed):
                    #expect(!compressed)
                    #expect(announced.count == out.count, "a prefix before the previous message (seed \(seed))")
                    announced.append(length)
                case .message(let m):
                    out.append(Array(m.framed.readableBytesView.dropFirst(5)))
                }
            }
        }
        #expect(out == payloads, "seed \(seed)")
        #expect(announced == payloads.map(\.count), "seed \(seed)")
        #expect(reader.bufferedBytes == 0)
    }

    @Test("a 2 GiB length prefix is reported with only its 5 bytes held; nothing is allocated from it")
    func hugePrefix() {
        var reader = GRPCMessageReader()
        var header = ByteBuffer()
        header.writeInteger(UInt8(0))
        header.writeInteger(UInt32(2_147_483_648))
        reader.append(header)
        guard case .prefix(let length, _)? = reader.next() else {
            Issue.record("no prefix")
            return
        }
        #expect(length == 2_147_483_648)
        #expect(reader.bufferedBytes == 5)
    }

    @Test("a large message's buffer grows with the bytes that arrive, not to its announced length")
    func growsAsBytesArrive() {
        var reader = GRPCMessageReader()
        let payload = [UInt8](repeating: 7, count: 8 << 20)
        var stream = framed(payload)
        reader.append(stream.readSlice(length: 16 << 10)!)
        guard case .prefix? = reader.next() else {
            Issue.record("no prefix")
            return
        }
        if case .some = reader.next() { Issue.record("a message before its bytes arrived") }
        let early = reader.gatheringCapacity ?? 0
        #expect(early > 0 && early < 1 << 20, "capacity \(early) after 16 KiB of an 8 MiB message")
        while stream.readableBytes > 0 {
            reader.append(stream.readSlice(length: min(stream.readableBytes, 64 << 10))!)
        }
        guard case .message(let m)? = reader.next() else {
            Issue.record("no message")
            return
        }
        #expect(m.payloadLength == payload.count)
        #expect(reader.bufferedBytes == 0)
    }
}
