/// The `grpc-timeout` header: at most 8 ASCII digits and a unit (H, M, S, m, u, n).
public enum GRPCTimeout {
    public static func parse(_ value: Substring) -> Duration? {
        guard let unit = value.last, value.count >= 2, value.count <= 9 else { return nil }
        let digits = value.dropLast()
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }), let amount = Int64(digits) else { return nil }
        switch unit {
        case "H": return .seconds(amount * 3600)
        case "M": return .seconds(amount * 60)
        case "S": return .seconds(amount)
        case "m": return .milliseconds(amount)
        case "u": return .microseconds(amount)
        case "n": return .nanoseconds(amount)
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
