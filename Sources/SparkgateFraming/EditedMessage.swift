import NIOCore
import SparkgateCore

/// A gRPC message with byte edits applied, as buffers to write in order: small rewritten regions are copied
/// into fresh buffers, and every large untouched region is a zero-copy slice of the original. Editing a
/// 4 MiB Arrow batch's session id costs a 50-byte copy, not a 4 MiB one.
public enum EditedMessage {
    /// Untouched runs shorter than this are copied rather than sliced (each slice is a separate DATA frame).
    public static let sliceThreshold = 4096

    public static func segments(
        of message: GRPCMessage, applying edits: [ByteEdit], allocator: ByteBufferAllocator
    ) -> [ByteBuffer] {
        let framed = message.framed
        let payloadStart = framed.readerIndex + 5
        let payloadLength = message.payloadLength
        let newLength = edits.resultLength(from: payloadLength)
        var out: [ByteBuffer] = []
        var current = allocator.buffer(capacity: 5 + min(newLength, 512))
        current.writeInteger(UInt8(message.compressed ? 1 : 0))
        current.writeInteger(UInt32(newLength))

        func copyOrSlice(_ range: Range<Int>) {
            guard !range.isEmpty else { return }
            if range.count >= sliceThreshold {
                if current.readableBytes > 0 { out.append(current) }
                out.append(framed.getSlice(at: payloadStart + range.lowerBound, length: range.count)!)
                current = allocator.buffer(capacity: 256)
            } else {
                var slice = framed.getSlice(at: payloadStart + range.lowerBound, length: range.count)!
                current.writeBuffer(&slice)
            }
        }

        var position = 0
        for edit in edits {
            copyOrSlice(position..<edit.range.lowerBound)
            current.writeBytes(edit.replacement)
            position = edit.range.upperBound
        }
        copyOrSlice(position..<payloadLength)
        if current.readableBytes > 0 { out.append(current) }
        return out
    }
}
