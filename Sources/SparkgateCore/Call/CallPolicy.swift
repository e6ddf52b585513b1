/// What a configuration generation decides for every call that starts under it.
public struct CallPolicy: Sendable {
    /// `max_message_bytes`: the largest gRPC message either side may send.
    public var maxMessageBytes: Int
    public var configPolicy: ConfigPolicy
    /// Session-id namespacing, nil when it is off.
    public var namespace: SessionNamespace?
    public var rejectForeignSessionIDs: Bool
    /// The stream window the gateway advertises, which sizes how much it holds per stream before pushing back.
    public var streamWindow: Int
    /// The most one direction of one stream may hold in the gateway beyond its window.
    public var maxBufferedPerStream: Int
    /// `limits.max_request_header_bytes`: a larger request head is refused on its stream.
    public var maxRequestHeaderBytes: Int
    /// `limits.max_buffered_bytes`: past it, new calls are refused.
    public var maxBufferedBytes: Int
    /// `auth.max_token_bytes`: a larger token is refused by name, even when it also makes the head too large.
    public var maxTokenBytes: Int
    /// Where each backend's calls go.
    public var backends: BackendDirectory

    /// Whether plans are read for SQL that sets denied configuration (whenever keys are denied).
    public var inspectsPlans: Bool { !configPolicy.denyKeys.isEmpty }

    /// Server settings every client is told, whatever the engine says: with plan inspection on, plan
    /// compression is off (PySpark asks for the threshold before it compresses a plan, and a compressed plan
    /// cannot be inspected).
    public var configOverrides: [String: String] {
        inspectsPlans ? Self.inspectionOverrides : [:]
    }

    /// Built once: a dictionary literal would be allocated on every Config call.
    private static let inspectionOverrides = ["spark.connect.session.planCompression.threshold": "-1"]

    public init(
        maxMessageBytes: Int, configPolicy: ConfigPolicy, namespace: SessionNamespace?, rejectForeignSessionIDs: Bool,
        streamWindow: Int = 1 << 20, maxBufferedPerStream: Int = 32 << 20, maxRequestHeaderBytes: Int = 64 << 10,
        maxBufferedBytes: Int = 1 << 30,
        maxTokenBytes: Int = 8192, backends: BackendDirectory = BackendDirectory(backends: [:], tokens: [:])
    ) {
        self.backends = backends
        self.maxTokenBytes = maxTokenBytes
        self.maxRequestHeaderBytes = maxRequestHeaderBytes
        self.maxBufferedBytes = maxBufferedBytes
        self.maxMessageBytes = maxMessageBytes
        self.configPolicy = configPolicy
        self.namespace = namespace
        self.rejectForeignSessionIDs = rejectForeignSessionIDs
        self.streamWindow = streamWindow
        self.maxBufferedPerStream = maxBufferedPerStream
    }
}
