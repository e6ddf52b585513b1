import NIOCore

/// One gRPC message: the 5-byte prefix (compressed flag, big-endian length) and its payload, in one buffer.
struct GRPCMessage {
    /// The framed bytes, prefix included: forwarded as they are when nothing in the message changes.
    var framed: ByteBuffer
    var compressed: Bool

    var payloadLength: Int { framed.readableBytes - 5 }

    /// Runs `body` over the payload bytes without copying them.
    func withPayload<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try framed.withUnsafeReadableBytes { raw in try body(UnsafeRawBufferPointer(rebasing: raw[5...])) }
    }

    static func frame(payload: some Collection<UInt8>, allocator: ByteBufferAllocator) -> GRPCMessage {
        var buffer = allocator.buffer(capacity: payload.count + 5)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(payload.count))
        buffer.writeBytes(payload)
        return GRPCMessage(framed: buffer, compressed: false)
    }
}

/// Splits a stream of DATA frame payloads into gRPC messages.
///
/// A message that fits in the frames already received is sliced out without a copy; one that spans frames
/// is gathered into a buffer allocated once at its announced length, and refused before any of it is
/// buffered when that length is over the limit.
struct GRPCMessageReader {
    enum ReadError: Error, Equatable {
        case tooLarge(Int)
    }

    let maxMessageBytes: Int
    private var pending: ByteBuffer?
    /// The message being gathered across frames, with its full framed length.
    private var partial: (buffer: ByteBuffer, total: Int)?

    init(maxMessageBytes: Int) {
        self.maxMessageBytes = maxMessageBytes
    }

    /// Bytes received that do not yet form a whole message.
    var bufferedBytes: Int { (pending?.readableBytes ?? 0) + (partial?.buffer.readableBytes ?? 0) }

    mutating func append(_ data: ByteBuffer) {
        if var p = partial {
            partial = nil
            var d = data
            let need = p.total - p.buffer.readableBytes
            let take = min(need, d.readableBytes)
            var chunk = d.readSlice(length: take)!
            p.buffer.writeBuffer(&chunk)
            partial = p
            if d.readableBytes > 0 { appendPending(d) }
            return
        }
        appendPending(data)
    }

    private mutating func appendPending(_ data: ByteBuffer) {
        if var p = pending {
            pending = nil
            var d = data
            p.writeBuffer(&d)
            pending = p
        } else {
            pending = data
        }
    }

    /// The next whole message, nil when more bytes are needed.
    mutating func next() throws(ReadError) -> GRPCMessage? {
        if let p = partial {
            guard p.buffer.readableBytes == p.total else { return nil }
            partial = nil
            let compressed = p.buffer.getInteger(at: p.buffer.readerIndex, as: UInt8.self) == 1
            return GRPCMessage(framed: p.buffer, compressed: compressed)
        }
        guard var p = pending, p.readableBytes >= 5,
            let flag = p.getInteger(at: p.readerIndex, as: UInt8.self),
            let length = p.getInteger(at: p.readerIndex + 1, as: UInt32.self)
        else { return nil }
        guard Int(length) <= maxMessageBytes else { throw .tooLarge(Int(length)) }
        let total = Int(length) + 5
        if p.readableBytes >= total {
            let message = p.readSlice(length: total)!
            pending = p.readableBytes > 0 ? p : nil
            return GRPCMessage(framed: message, compressed: flag == 1)
        }
        // Gather the rest of this message into one buffer of exactly its size.
        var gathered = ByteBufferAllocator().buffer(capacity: total)
        gathered.writeBuffer(&p)
        pending = nil
        partial = (gathered, total)
        return nil
    }
}
