import Logging
import OTel
import ServiceLifecycle
import SparkgateCore
import Tracing

/// The OpenTelemetry tracer for `tracing`: spans batched and posted to the collector as OTLP/HTTP protobuf,
/// sampled by trace id at `sample_ratio` unless the client's `traceparent` already decided. Logs and metrics
/// stay with swift-log and Prometheus; the OTEL_* environment variables still override, as the spec says.
enum TracingBackend {
    static func make(_ settings: TracingSettings, logger: Logger) throws -> (tracer: any Tracer, service: any Service)?
    {
        guard let url = settings.tracesURL else { return nil }
        var c = OTel.Configuration.default
        c.serviceName = settings.serviceName
        c.diagnosticLogger = .custom(logger)
        c.logs.enabled = false
        c.metrics.enabled = false
        c.traces.enabled = true
        c.traces.sampler = .parentBasedTraceIDRatio(ratio: settings.sampleRatio) ?? .parentBasedTraceIDRatio
        c.traces.otlpExporter.endpoint = url
        c.traces.otlpExporter.protocol = .httpProtobuf
        c.traces.batchSpanProcessor.scheduleDelay = .seconds(2)
        let backend = try OTel.makeTracingBackend(configuration: c)
        return (backend.factory, backend.service)
    }
}
