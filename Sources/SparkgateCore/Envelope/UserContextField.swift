/// `user_context` (field 2 of every Spark Connect request) as Sparkgate writes it: the verified user as
/// `user_id` and `user_name`, followed by any fields kept from the client's own (extensions, unknown fields).
public enum UserContextField {
    public static func encode(
        user: String, keeping kept: [Range<Int>] = [], from bytes: UnsafeRawBufferPointer? = nil
    ) -> [UInt8] {
        var inner: [UInt8] = []
        inner.reserveCapacity(2 * (user.utf8.count + 20) + (bytes == nil ? 0 : kept.reduce(0) { $0 + $1.count }))
        WireEncoding.appendString(field: 1, user, to: &inner)
        WireEncoding.appendString(field: 2, user, to: &inner)
        if let bytes {
            for range in kept { inner.append(contentsOf: bytes[range]) }
        }
        return WireEncoding.lengthDelimited(field: 2, inner)
    }
}
