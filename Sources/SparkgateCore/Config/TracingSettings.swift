/// OpenTelemetry traces (`tracing`): off unless `otlpEndpoint` is set.
public struct TracingSettings: Sendable, Equatable {
    /// The OTLP/HTTP collector's base URL (`http://127.0.0.1:4318`); spans go to `<endpoint>/v1/traces`.
    public var otlpEndpoint: String?
    /// The share of new traces recorded; a client's sampled `traceparent` is always followed.
    public var sampleRatio = 0.01
    public var serviceName = "sparkgate"

    public init() {}

    public var enabled: Bool { otlpEndpoint != nil }

    /// Where spans are posted.
    public var tracesURL: String? {
        guard let base = otlpEndpoint else { return nil }
        if base.hasSuffix("/v1/traces") { return base }
        return (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/v1/traces"
    }
}
