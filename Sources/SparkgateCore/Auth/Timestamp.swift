/// RFC 3339 UTC rendering of Unix seconds, without a formatter (they are costly and not thread-safe).
public enum Timestamp {
    public static func rfc3339(_ unixSeconds: Double) -> String {
        let t = CivilTime(unixSeconds)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(t.year)-\(two(t.month))-\(two(t.day))T\(two(t.hour)):\(two(t.minute)):\(two(t.second))Z"
    }

    /// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` as bytes, without building strings.
    public static func appendRFC3339Millis(_ unixSeconds: Double, to out: inout [UInt8]) {
        let t = CivilTime(unixSeconds)
        let millis = Int64((unixSeconds - unixSeconds.rounded(.down)) * 1000)
        func digits(_ v: Int64, _ width: Int) {
            var divisor: Int64 = 1
            for _ in 1..<width { divisor *= 10 }
            var value = v
            while divisor > 0 {
                out.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
                value %= divisor
                divisor /= 10
            }
        }
        digits(t.year, 4)
        out.append(UInt8(ascii: "-"))
        digits(t.month, 2)
        out.append(UInt8(ascii: "-"))
        digits(t.day, 2)
        out.append(UInt8(ascii: "T"))
        digits(t.hour, 2)
        out.append(UInt8(ascii: ":"))
        digits(t.minute, 2)
        out.append(UInt8(ascii: ":"))
        digits(t.second, 2)
        out.append(UInt8(ascii: "."))
        digits(millis, 3)
        out.append(UInt8(ascii: "Z"))
    }
}

/// A UTC calendar date and time of day from Unix seconds (Howard Hinnant's civil-from-days).
private struct CivilTime {
    var year, month, day, hour, minute, second: Int64

    init(_ unixSeconds: Double) {
        let total = Int64(unixSeconds.rounded(.down))
        var days = total / 86_400
        var rem = total % 86_400
        if rem < 0 {
            rem += 86_400
            days -= 1
        }
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        day = doy - (153 * mp + 2) / 5 + 1
        month = mp < 10 ? mp + 3 : mp - 9
        year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        hour = rem / 3600
        minute = rem % 3600 / 60
        second = rem % 60
    }
}
