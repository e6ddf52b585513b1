/// What a backend's error status says about Sparkgate's own records.
public enum BackendVerdict {
    /// Spark reports a session it closed or never had as `INVALID_HANDLE.SESSION_CLOSED` / `SESSION_NOT_FOUND`
    /// (an INTERNAL status whose message starts with the error class).
    public static func sessionIsGone(status: GRPCStatusCode, message: String) -> Bool {
        status == .internal && (message.contains("INVALID_HANDLE.SESSION_CLOSED") || message.contains("INVALID_HANDLE.SESSION_NOT_FOUND"))
    }
}
