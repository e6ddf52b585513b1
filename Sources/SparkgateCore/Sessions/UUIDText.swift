/// UUIDs in their canonical 36-character text form (8-4-4-4-12 hex digits).
public enum UUIDText {
    /// The 16 bytes of a canonical UUID string (either case), or nil.
    public static func parse(_ text: String) -> [UInt8]? {
        guard text.utf8.count == 36 else { return nil }
        return isCanonical(text) ? bytes(Array(text.utf8)) : nil
    }

    /// Whether `text` is a canonical UUID, without allocating.
    public static func isCanonical(_ text: String) -> Bool {
        var count = 0
        for (i, c) in text.utf8.enumerated() {
            count += 1
            if i == 8 || i == 13 || i == 18 || i == 23 {
                if c != UInt8(ascii: "-") { return false }
            } else if HexDigit.value(c) == nil {
                return false
            }
        }
        return count == 36
    }

    private static func bytes(_ utf8: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(16)
        var i = 0
        while i < 36 {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard utf8[i] == UInt8(ascii: "-") else { return nil }
                i += 1
                continue
            }
            guard let hi = HexDigit.value(utf8[i]), let lo = HexDigit.value(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    /// `text` in lower case; the same string, without a copy, when it has no upper-case letter (ids as every
    /// client sends them).
    public static func lowercased(_ text: String) -> String {
        text.utf8.allSatisfy({ $0 < 0x80 && !($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) })
            ? text : text.lowercased()
    }

    public static func format<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        precondition(bytes.count == 16)
        // Written straight into the string's storage: one allocation per id (ids are formatted per call).
        return String(
            unsafeUninitializedCapacity: 36,
            initializingUTF8With: { out in
                var n = 0
                for (i, b) in bytes.enumerated() {
                    if i == 4 || i == 6 || i == 8 || i == 10 {
                        out[n] = UInt8(ascii: "-")
                        n += 1
                    }
                    out[n] = hexDigit(b >> 4)
                    out[n + 1] = hexDigit(b & 0xF)
                    n += 2
                }
                return n
            })
    }

    private static func hexDigit(_ v: UInt8) -> UInt8 {
        v < 10 ? UInt8(ascii: "0") + v : UInt8(ascii: "a") + v - 10
    }

    /// A random (version 4) UUID.
    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> String {
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        return format(bytes)
    }

    public static func random() -> String {
        var g = SystemRandomNumberGenerator()
        return random(using: &g)
    }
}
