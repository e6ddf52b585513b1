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

    public init(
        maxMessageBytes: Int, configPolicy: ConfigPolicy, namespace: SessionNamespace?, rejectForeignSessionIDs: Bool,
        streamWindow: Int = 1 << 20, maxBufferedPerStream: Int = 32 << 20
    ) {
        self.maxMessageBytes = maxMessageBytes
        self.configPolicy = configPolicy
        self.namespace = namespace
        self.rejectForeignSessionIDs = rejectForeignSessionIDs
        self.streamWindow = streamWindow
        self.maxBufferedPerStream = maxBufferedPerStream
    }
}
