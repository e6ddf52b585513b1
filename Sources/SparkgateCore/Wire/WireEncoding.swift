/// The few encoders Sparkgate needs to write fields it replaces or inserts.
public enum WireEncoding {
    public static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    public static func appendTag(field: Int, wireType: WireType, to out: inout [UInt8]) {
        appendVarint(UInt64(field) << 3 | UInt64(wireType.rawValue), to: &out)
    }

    public static func appendLengthDelimited(field: Int, _ payload: some Collection<UInt8>, to out: inout [UInt8]) {
        appendTag(field: field, wireType: .lengthDelimited, to: &out)
        appendVarint(UInt64(payload.count), to: &out)
        out.append(contentsOf: payload)
    }

    /// One length-delimited field in an array allocated once, at its size (tag and length take at most 10
    /// bytes each).
    public static func lengthDelimited(field: Int, _ payload: some Collection<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + 20)
        appendLengthDelimited(field: field, payload, to: &out)
        return out
    }

    public static func string(field: Int, _ value: String) -> [UInt8] {
        lengthDelimited(field: field, value.utf8)
    }

    public static func appendString(field: Int, _ value: String, to out: inout [UInt8]) {
        // The string's own UTF-8 storage, appended in place: no intermediate array per field.
        appendLengthDelimited(field: field, value.utf8, to: &out)
    }
}
