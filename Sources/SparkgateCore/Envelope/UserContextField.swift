/// `user_context` (field 2 of every Spark Connect request) as Sparkgate writes it: the verified user as
/// `user_id` and `user_name`, followed by any fields kept from the client's own (extensions, unknown fields).
public enum UserContextField {
    public static func encode(
        user: String, keeping kept: [Range<Int>] = [], from bytes: UnsafeRawBufferPointer? = nil
    ) -> [UInt8] {
        var inner: [UInt8] = []
        WireEncoding.appendString(field: 1, user, to: &inner)
        WireEncoding.appendString(field: 2, user, to: &inner)
        if let bytes {
            for range in kept { inner.append(contentsOf: bytes[range]) }
        }
        var field: [UInt8] = []
        WireEncoding.appendLengthDelimited(field: 2, inner, to: &field)
        return field
    }
}
