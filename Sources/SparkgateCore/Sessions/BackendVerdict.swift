/// What a backend's error status says about Sparkgate's own records, decided from the structured error
/// class only: the status message can echo text a user chose (a config key, a `raise_error` argument).
public enum BackendVerdict {
    /// Spark closed the session or never had it (`INVALID_HANDLE.SESSION_CLOSED` / `SESSION_NOT_FOUND`).
    public static func sessionIsGone(_ status: BackendStatus) -> Bool {
        guard status.code == .internal, let errorClass = status.errorClass else { return false }
        return errorClass == "INVALID_HANDLE.SESSION_CLOSED" || errorClass == "INVALID_HANDLE.SESSION_NOT_FOUND"
    }

    /// Another stream took the operation over (`INVALID_CURSOR.DISCONNECTED`): the operation itself goes on.
    public static func streamWasTakenOver(_ status: BackendStatus) -> Bool {
        status.code == .internal && (status.errorClass?.hasPrefix("INVALID_CURSOR.") ?? false)
    }

    /// Spark no longer has the operation (`INVALID_HANDLE.OPERATION_NOT_FOUND` / `OPERATION_ABANDONED`).
    public static func operationIsGone(_ status: BackendStatus) -> Bool {
        guard status.code == .internal, let errorClass = status.errorClass else { return false }
        return errorClass == "INVALID_HANDLE.OPERATION_NOT_FOUND" || errorClass == "INVALID_HANDLE.OPERATION_ABANDONED"
    }
}
