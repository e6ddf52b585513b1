/// RFC 3339 UTC rendering of Unix seconds, without a formatter (they are costly and not thread-safe).
public enum Timestamp {
    public static func rfc3339(_ unixSeconds: Double) -> String {
        let total = Int64(unixSeconds.rounded(.down))
        var days = total / 86_400
        var rem = total % 86_400
        if rem < 0 { rem += 86_400; days -= 1 }
        // Civil-from-days (Howard Hinnant).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(y)-\(two(m))-\(two(d))T\(two(rem / 3600)):\(two(rem % 3600 / 60)):\(two(rem % 60))Z"
    }

    /// RFC 3339 with milliseconds, for audit lines.
    public static func rfc3339Millis(_ unixSeconds: Double) -> String {
        let base = rfc3339(unixSeconds)
        let millis = Int((unixSeconds - unixSeconds.rounded(.down)) * 1000)
        let ms = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return base.dropLast() + ".\(ms)Z"
    }
}
