/// The `grpc-timeout` header: at most 8 ASCII digits and a unit (H, M, S, m, u, n).
public enum GRPCTimeout {
    /// Read as bytes: every valid value is ASCII, and Character-level reading (grapheme breaking, Unicode
    /// digit properties) cost a sequential call several microseconds (PySpark sends one per call).
    public static func parse(_ value: Substring) -> Duration? {
        let bytes = value.utf8
        guard bytes.count >= 2, bytes.count <= 9, let unit = bytes.last else { return nil }
        var amount: Int64 = 0
        for byte in bytes.dropLast() {
            let digit = byte &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            amount = amount * 10 + Int64(digit)
        }
        switch unit {
        case UInt8(ascii: "H"): return .seconds(amount * 3600)
        case UInt8(ascii: "M"): return .seconds(amount * 60)
        case UInt8(ascii: "S"): return .seconds(amount)
        case UInt8(ascii: "m"): return .milliseconds(amount)
        case UInt8(ascii: "u"): return .microseconds(amount)
        case UInt8(ascii: "n"): return .nanoseconds(amount)
        default: return nil
        }
    }

    public static func parse(_ value: String) -> Duration? { parse(value[...]) }

    /// The shortest exact-or-rounded-up encoding that fits 8 digits, as gRPC clients write it.
    public static func encode(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return "0n" }
        guard seconds < 3_600 * 99_999_999 else { return "99999999H" }
        let nanos = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        let units: [(Int64, Character)] = [
            (1, "n"), (1_000, "u"), (1_000_000, "m"), (1_000_000_000, "S"), (60_000_000_000, "M"),
            (3_600_000_000_000, "H"),
        ]
        for (scale, unit) in units {
            let value = (nanos + scale - 1) / scale
            if value < 100_000_000 { return "\(value)\(unit)" }
        }
        return "99999999H"
    }
}
