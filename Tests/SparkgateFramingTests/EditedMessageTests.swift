import NIOCore
import SparkgateCore
import SparkgateFraming
import Testing

@Suite("Edited messages")
struct EditedMessageTests {
    func message(_ payload: [UInt8]) -> GRPCMessage {
        GRPCMessage.frame(payload: payload, allocator: ByteBufferAllocator())
    }

    func joined(_ segments: [ByteBuffer]) -> [UInt8] {
        segments.flatMap { Array($0.readableBytesView) }
    }

    @Test("segments concatenate to the edited message with a correct length prefix", arguments: [0, 10, 5000, 100_000])
    func concatenation(size: Int) {
        var rng = SystemRandomNumberGenerator()
        let payload = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let edits: [ByteEdit] =
            size >= 60
            ? [
                ByteEdit(range: 2..<40, replacement: Array(repeating: 7, count: 36)),
                ByteEdit(range: 50..<50, replacement: [1, 2, 3]), ByteEdit(range: size..<size, replacement: [9]),
            ]
            : [ByteEdit(range: size..<size, replacement: [9, 9])]
        let expectedPayload = payload.withUnsafeBytes { edits.applied(to: $0) }
        let segments = EditedMessage.segments(of: message(payload), applying: edits, allocator: ByteBufferAllocator())
        let bytes = joined(segments)
        #expect(bytes[0] == 0)
        #expect(
            Int(UInt32(bytes[1]) << 24 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 8 | UInt32(bytes[4]))
                == expectedPayload.count)
        #expect(Array(bytes[5...]) == expectedPayload)
    }

    @Test("a large untouched region is passed as one slice, not copied")
    func slicing() {
        let payload = [UInt8](repeating: 42, count: 1 << 20)
        let segments = EditedMessage.segments(
            of: message(payload), applying: [ByteEdit(range: 2..<38, replacement: Array(repeating: 1, count: 36))],
            allocator: ByteBufferAllocator())
        #expect(segments.count == 2)
        #expect(segments[0].readableBytes == 5 + 38)
        #expect(segments[1].readableBytes == (1 << 20) - 38)
    }
}
