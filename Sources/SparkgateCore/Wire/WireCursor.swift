/// Walks the top-level fields of one protobuf message in a byte range, checking every length against the
/// bounds so hostile input can make it throw but never read outside the buffer.
public struct WireCursor {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset: Int
    public let end: Int

    /// Groups are obsolete and never used by Spark Connect; the limit only stops hostile nesting.
    static let maximumGroupDepth = 64

    public init(_ bytes: UnsafeRawBufferPointer, range: Range<Int>? = nil) {
        self.bytes = bytes
        let r = range ?? 0..<bytes.count
        self.offset = r.lowerBound
        self.end = r.upperBound
    }

    /// The next field, or nil at the end of the range.
    public mutating func next() throws(WireError) -> WireField? {
        guard offset < end else { return nil }
        let start = offset
        let key = try readVarint()
        let rawType = UInt8(truncatingIfNeeded: key & 7)
        guard let wireType = WireType(rawValue: rawType) else { throw .invalidWireType(rawType) }
        let number = key >> 3
        guard number > 0, number <= 536_870_911 else { throw .invalidFieldNumber }
        let valueStart = offset
        var varint: UInt64 = 0
        switch wireType {
        case .varint:
            varint = try readVarint()
        case .fixed64:
            try skip(8)
        case .fixed32:
            try skip(4)
        case .lengthDelimited:
            let length = try readVarint()
            guard length <= UInt64(end - offset) else { throw .truncated }
            let payloadStart = offset
            offset += Int(length)
            return WireField(
                number: Int(number), wireType: wireType, start: start, value: payloadStart..<offset, varint: 0)
        case .startGroup:
            try skipGroup(number: number, depth: 1)
        case .endGroup:
            throw .unbalancedGroup
        }
        return WireField(
            number: Int(number), wireType: wireType, start: start, value: valueStart..<offset, varint: varint)
    }

    mutating func readVarint() throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end else { throw .truncated }
            let byte = bytes[offset]
            offset += 1
            if shift == 63 && byte > 1 { throw .malformedVarint }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw .malformedVarint }
        }
    }

    mutating func skip(_ count: Int) throws(WireError) {
        guard count <= end - offset else { throw .truncated }
        offset += count
    }

    private mutating func skipGroup(number: UInt64, depth: Int) throws(WireError) {
        guard depth <= Self.maximumGroupDepth else { throw .nestingTooDeep }
        while true {
            guard offset < end else { throw .truncated }
            let key = try readVarint()
            let rawType = UInt8(truncatingIfNeeded: key & 7)
            guard let wireType = WireType(rawValue: rawType) else { throw .invalidWireType(rawType) }
            switch wireType {
            case .varint: _ = try readVarint()
            case .fixed64: try skip(8)
            case .fixed32: try skip(4)
            case .lengthDelimited:
                let length = try readVarint()
                guard length <= UInt64(end - offset) else { throw .truncated }
                offset += Int(length)
            case .startGroup: try skipGroup(number: key >> 3, depth: depth + 1)
            case .endGroup:
                guard key >> 3 == number else { throw .unbalancedGroup }
                return
            }
        }
    }
}

extension WireCursor {
    /// The UTF-8 string in a length-delimited field's payload (invalid UTF-8 is repaired, never trusted).
    public func string(_ field: WireField) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[field.value]), as: UTF8.self)
    }

    /// A cursor over a nested message's fields.
    public func nested(_ field: WireField) -> WireCursor {
        WireCursor(bytes, range: field.value)
    }
}
