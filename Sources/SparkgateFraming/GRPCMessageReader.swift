import NIOCore

/// One gRPC message: the 5-byte prefix (compressed flag, big-endian length) and its payload, in one buffer.
public struct GRPCMessage: Sendable {
    /// The framed bytes, prefix included: forwarded as they are when nothing in the message changes.
    public var framed: ByteBuffer
    public var compressed: Bool

    public init(framed: ByteBuffer, compressed: Bool) {
        self.framed = framed
        self.compressed = compressed
    }

    public var payloadLength: Int { framed.readableBytes - 5 }

    /// Runs `body` over the payload bytes without copying them.
    public func withPayload<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try framed.withUnsafeReadableBytes { raw in try body(UnsafeRawBufferPointer(rebasing: raw[5...])) }
    }

    /// Frames `payload` as one uncompressed message.
    public static func frame(
        payload: some Collection<UInt8>, allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> GRPCMessage {
        var buffer = allocator.buffer(capacity: payload.count + 5)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(payload.count))
        buffer.writeBytes(payload)
        return GRPCMessage(framed: buffer, compressed: false)
    }
}

/// Splits a stream of DATA frame payloads into gRPC messages.
///
/// Each message's prefix is reported before any of its payload is gathered, so its length can be refused
/// first. A message that arrived whole is sliced out without a copy. One that spans frames is gathered into
/// one buffer: from a client, a buffer that grows with what arrives (never sized from a length prefix alone,
/// which any client can write); from a backend, a trusted peer whose lengths already passed
/// `max_message_bytes`, sized once from the prefix, so a 4 MiB Arrow batch is copied once, not regrown.
public struct GRPCMessageReader {
    public enum Item {
        case prefix(length: Int, compressed: Bool)
        case message(GRPCMessage)
    }

    private enum State {
        case expectingPrefix
        /// The prefix was reported; the message starts at the front of `pending`.
        case announced(total: Int, compressed: Bool)
        /// Part of the message is in `buffer`; every new byte goes there first.
        case gathering(buffer: ByteBuffer, total: Int, compressed: Bool)
    }

    private var state = State.expectingPrefix
    /// Bytes received that belong to no message being gathered.
    private var pending: ByteBuffer?
    private let allocator = ByteBufferAllocator()
    /// Whether a message's buffer may be sized from its length prefix (a backend's messages).
    public let trustsLengths: Bool

    public init(trustsLengths: Bool = false) {
        self.trustsLengths = trustsLengths
    }

    /// Bytes received that do not yet form a whole message.
    public var bufferedBytes: Int {
        if case .gathering(let buffer, _, _) = state { return buffer.readableBytes + (pending?.readableBytes ?? 0) }
        return pending?.readableBytes ?? 0
    }

    /// The capacity of the buffer a message is being gathered into, if one is (it grows with the bytes).
    public var gatheringCapacity: Int? {
        if case .gathering(let buffer, _, _) = state { return buffer.capacity }
        return nil
    }

    public mutating func append(_ data: ByteBuffer) {
        var data = data
        if case .gathering(var buffer, let total, let compressed) = state, pending == nil {
            state = .expectingPrefix
            var chunk = data.readSlice(length: min(total - buffer.readableBytes, data.readableBytes))!
            buffer.writeBuffer(&chunk)
            state = .gathering(buffer: buffer, total: total, compressed: compressed)
        }
        guard data.readableBytes > 0 else { return }
        if var p = pending {
            pending = nil
            p.writeBuffer(&data)
            pending = p
        } else {
            pending = data
        }
    }

    /// The next prefix or whole message, nil when more bytes are needed.
    public mutating func next() -> Item? {
        switch state {
        case .expectingPrefix:
            guard let p = pending, p.readableBytes >= 5,
                let flag = p.getInteger(at: p.readerIndex, as: UInt8.self),
                let length = p.getInteger(at: p.readerIndex + 1, as: UInt32.self)
            else { return nil }
            state = .announced(total: Int(length) + 5, compressed: flag == 1)
            return .prefix(length: Int(length), compressed: flag == 1)
        case .announced(let total, let compressed):
            let available = pending?.readableBytes ?? 0
            if available >= total, var p = pending {
                let message = p.readSlice(length: total)!
                pending = p.readableBytes > 0 ? p : nil
                state = .expectingPrefix
                return .message(GRPCMessage(framed: message, compressed: compressed))
            }
            var buffer = allocator.buffer(capacity: trustsLengths ? total : min(total, max(2 * available, 64 << 10)))
            if var p = pending {
                buffer.writeBuffer(&p)
                pending = nil
            }
            state = .gathering(buffer: buffer, total: total, compressed: compressed)
            return nil
        case .gathering(let buffer, let total, let compressed):
            guard buffer.readableBytes == total else { return nil }
            state = .expectingPrefix
            return .message(GRPCMessage(framed: buffer, compressed: compressed))
        }
    }
}
