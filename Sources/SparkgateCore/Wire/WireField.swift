/// One field as found on the wire, located by byte offsets into the message it was read from.
///
/// Offsets are absolute within the buffer the cursor walks, so a caller can splice the original bytes
/// around a field without re-encoding anything else.
public struct WireField: Sendable, Equatable {
    public var number: Int
    public var wireType: WireType
    /// Offset of the field's first tag byte.
    public var start: Int
    /// The payload: the bytes of a length-delimited value, or the encoded varint/fixed bytes otherwise.
    public var value: Range<Int>
    /// The decoded number for varint fields, zero otherwise.
    public var varint: UInt64

    /// The whole field, tag included.
    public var range: Range<Int> { start..<value.upperBound }
}
