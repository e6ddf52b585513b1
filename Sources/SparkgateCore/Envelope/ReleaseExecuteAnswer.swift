/// The `ReleaseExecuteResponse` Sparkgate gives itself for a session it already released: `session_id` (1)
/// only; `operation_id` (2) stays unset, which is how Spark answers for an operation it does not hold.
public enum ReleaseExecuteAnswer {
    public static func message(sessionID: String) -> [UInt8] {
        var out: [UInt8] = []
        WireEncoding.appendString(field: 1, sessionID, to: &out)
        return out
    }
}
