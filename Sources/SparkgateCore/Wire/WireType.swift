/// The six protobuf wire types. Sparkgate never needs a schema: it walks fields by their wire type.
public enum WireType: UInt8, Sendable {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case startGroup = 3
    case endGroup = 4
    case fixed32 = 5
}

/// Why a byte sequence is not a well-formed protobuf message.
public enum WireError: Error, Equatable, Sendable {
    case truncated
    case malformedVarint
    case invalidWireType(UInt8)
    case invalidFieldNumber
    case unbalancedGroup
    case nestingTooDeep
}
