import NIOCore

/// Incremental RESP2 reply parser: reads one whole value from the front of a buffer, or reports that more bytes
/// are needed without consuming any. Sizes are bounded, so a broken or hostile peer cannot make it allocate
/// what it announces.
public struct RESPParser: Sendable {
    public var maxBulkBytes: Int
    public var maxArrayElements: Int
    public var maxDepth: Int

    public init(maxBulkBytes: Int = 16 << 20, maxArrayElements: Int = 1 << 20, maxDepth: Int = 8) {
        self.maxBulkBytes = maxBulkBytes
        self.maxArrayElements = maxArrayElements
        self.maxDepth = maxDepth
    }

    /// The next whole value, consumed from `buffer`; nil (and nothing consumed) when it has not all arrived.
    public func parse(_ buffer: inout ByteBuffer) throws(RedisError) -> RESPValue? {
        var cursor = buffer.readerIndex
        guard let value = try parseValue(buffer, &cursor, depth: 0) else { return nil }
        buffer.moveReaderIndex(to: cursor)
        return value
    }

    private func parseValue(_ buffer: ByteBuffer, _ cursor: inout Int, depth: Int) throws(RedisError) -> RESPValue? {
        guard depth <= maxDepth else { throw .protocolViolation("reply nested deeper than \(maxDepth)") }
        guard let kind = buffer.getInteger(at: cursor, as: UInt8.self) else { return nil }
        var lineStart = cursor + 1
        guard let line = try readLine(buffer, &lineStart) else { return nil }
        switch kind {
        case UInt8(ascii: "+"):
            cursor = lineStart
            return .simpleString(String(decoding: line, as: UTF8.self))
        case UInt8(ascii: "-"):
            cursor = lineStart
            return .error(String(decoding: line, as: UTF8.self))
        case UInt8(ascii: ":"):
            guard let n = Self.integer(line) else { throw .protocolViolation("bad integer reply") }
            cursor = lineStart
            return .integer(n)
        case UInt8(ascii: "$"):
            guard let n = Self.integer(line), n >= -1 else { throw .protocolViolation("bad bulk length") }
            if n == -1 {
                cursor = lineStart
                return .bulkString(nil)
            }
            guard n <= maxBulkBytes else {
                throw .protocolViolation("bulk reply of \(n) bytes is over \(maxBulkBytes)")
            }
            let length = Int(n)
            guard buffer.writerIndex - lineStart >= length + 2 else { return nil }
            guard let bytes = buffer.getBytes(at: lineStart, length: length),
                buffer.getInteger(at: lineStart + length, as: UInt16.self) == 0x0D0A
            else { throw .protocolViolation("bulk reply not terminated by CRLF") }
            cursor = lineStart + length + 2
            return .bulkString(bytes)
        case UInt8(ascii: "*"):
            guard let n = Self.integer(line), n >= -1 else { throw .protocolViolation("bad array length") }
            if n == -1 {
                cursor = lineStart
                return .array(nil)
            }
            guard n <= maxArrayElements else {
                throw .protocolViolation("array of \(n) elements is over \(maxArrayElements)")
            }
            var position = lineStart
            var elements: [RESPValue] = []
            elements.reserveCapacity(min(Int(n), 1024))
            for _ in 0..<n {
                guard let element = try parseValue(buffer, &position, depth: depth + 1) else { return nil }
                elements.append(element)
            }
            cursor = position
            return .array(elements)
        default:
            throw .protocolViolation("unknown reply type byte \(kind)")
        }
    }

    /// The bytes up to CRLF (not included), moving `cursor` past it; nil when no CRLF has arrived. A line is
    /// at most 64 KiB: a peer that sends no CRLF cannot make the search grow without bound.
    private func readLine(_ buffer: ByteBuffer, _ cursor: inout Int) throws(RedisError) -> [UInt8]? {
        let start = cursor - buffer.readerIndex
        let (found, searched): (Int?, Int) = buffer.withUnsafeReadableBytes { bytes in
            let end = min(bytes.count, start + 65_536)
            var i = start
            while i + 1 < end {
                if bytes[i] == 0x0D && bytes[i + 1] == 0x0A { return (i, end - start) }
                i += 1
            }
            return (nil, end - start)
        }
        guard let found else {
            if searched >= 65_536 { throw .protocolViolation("a reply line longer than 64 KiB") }
            return nil
        }
        let line = buffer.getBytes(at: cursor, length: found - start) ?? []
        cursor += found - start + 2
        return line
    }

    static func integer(_ bytes: [UInt8]) -> Int64? {
        Int64(String(decoding: bytes, as: UTF8.self))
    }
}
