/// The limits one team works under. Zero means unlimited for the byte and time limits.
public struct QuotaSettings: Sendable, Equatable {
    public var maxSessionsPerUser = 8
    public var maxConcurrentOperationsPerSession = 4
    public var maxConcurrentOperationsPerTeam = 64
    public var requestsPerSecond = 50.0
    public var requestBurst = 100
    /// The calls clients make on their own to resume or release work (ReattachExecute, ReleaseExecute,
    /// ReleaseSession, Interrupt) have a bucket of their own, generous enough never to slow a real client.
    public var housekeepingRequestsPerSecond = 500.0
    public var housekeepingRequestBurst = 1000
    public var maxRequestBytes = 134_217_728
    public var maxArtifactBytesPerSession = 1_073_741_824
    public var maxResultBytesPerOperation = 0
    public var maxOperationSeconds = 0.0
    public var sessionIdleSeconds = 3600.0
    /// A session older than this is released on its backend, however busy; 0 = no limit.
    public var maxSessionSeconds = 0.0

    public init() {}

    /// YAML keys, in the order the README's table lists them.
    public static let keys = [
        "max_sessions_per_user", "max_concurrent_operations_per_session", "max_concurrent_operations_per_team",
        "requests_per_second", "request_burst", "housekeeping_requests_per_second", "housekeeping_request_burst",
        "max_request_bytes", "max_artifact_bytes_per_session",
        "max_result_bytes_per_operation", "max_operation_seconds", "session_idle_seconds", "max_session_seconds",
    ]
}
