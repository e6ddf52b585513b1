import SparkgateObservability

/// What one client connection takes from the runtime: the configuration generation each of its calls starts
/// under (read per call, so a reload applies from the next call), what those calls share, and where its own
/// pipeline reports handshakes and limits.
package struct ConnectionParts: Sendable {
    package let generation: @Sendable () -> GatewayGeneration
    let calls: CallContext
    let handshakeFailures: HandshakeFailureLog

    var metrics: GatewayMetrics { calls.metrics }
}
