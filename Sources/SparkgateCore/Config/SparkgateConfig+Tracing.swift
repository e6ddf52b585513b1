import Yams

extension SparkgateConfig {
    static func readTracing(_ node: Node, _ r: ConfigReader) -> TracingSettings {
        var t = TracingSettings()
        let m = r.mapping(node, "tracing", allowed: ["otlp_endpoint", "sample_ratio", "service_name"])
        if let n = m["otlp_endpoint"], let v = r.optionalString(n, "tracing.otlp_endpoint"), let url = v {
            let lower = url.lowercased()
            if (lower.hasPrefix("http://") || lower.hasPrefix("https://")) && url.count > 8 && !url.contains(" ") {
                t.otlpEndpoint = url
            } else {
                r.fail(
                    "tracing.otlp_endpoint", n,
                    "'\(url)' is not an http:// or https:// URL of an OTLP/HTTP collector (for example http://127.0.0.1:4318)"
                )
            }
        }
        if let n = m["sample_ratio"], let v = r.number(n, "tracing.sample_ratio", min: 0) {
            if v > 1 {
                r.fail("tracing.sample_ratio", n, "\(v) is more than 1 (1 records every trace, 0.01 one in a hundred)")
            } else {
                t.sampleRatio = v
            }
        }
        if let n = m["service_name"], let v = r.nonEmptyString(n, "tracing.service_name") { t.serviceName = v }
        return t
    }
}
