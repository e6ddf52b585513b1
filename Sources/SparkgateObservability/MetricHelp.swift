/// The `# HELP` line of each Sparkgate metric. swift-metrics has no place for help text and the Prometheus
/// factory registers every metric with none, so the exposition gets them added here: scrapers show them, and
/// `promtool check metrics` lints a metric without one.
public enum MetricHelp {
    public static let texts: [String: String] = [
        "sparkgate_rpcs_total": "Finished RPCs by method, team and gRPC status code.",
        "sparkgate_rpc_duration_seconds": "RPC duration from request headers to trailers, by method.",
        "sparkgate_first_response_seconds": "Time from an ExecutePlan request to its first response message.",
        "sparkgate_request_bytes_total": "Request message bytes received from clients, by team.",
        "sparkgate_result_bytes_total": "Arrow result bytes streamed to clients, by team.",
        "sparkgate_result_rows_total": "Arrow result rows streamed to clients, by team.",
        "sparkgate_active_sessions": "Spark sessions Sparkgate tracks, by team.",
        "sparkgate_active_operations": "Operations running (from ExecutePlan to completion or release), by team.",
        "sparkgate_auth_failures_total": "Refused tokens, by reason.",
        "sparkgate_quota_rejections_total": "Calls refused by a quota, by team and limit.",
        "sparkgate_tls_certificate_expiry_timestamp_seconds":
            "When the serving TLS certificate expires, in Unix seconds (absent without TLS).",
        "sparkgate_start_time_seconds": "When this process started, in Unix seconds (a change means a restart).",
        "sparkgate_state_errors_total":
            "Operations on the shared state (Redis) that failed, by kind and operation; each one fell back to the failure policy.",
        "sparkgate_backend_health":
            "1 while a backend endpoint passes its health checks and takes new sessions, else 0.",
        "sparkgate_engines": "Launched engines, by backend and state (starting, ready, stopping).",
        "sparkgate_engine_launches_total": "Engine launch attempts, by backend and result (ready, failed, timed_out).",
        "sparkgate_engine_launch_seconds":
            "Time from an engine's launch until it answered its readiness probe, by backend.",
        "sparkgate_engine_port_conflicts_total":
            "Launches whose port was found held by a process Sparkgate did not start, by backend; each was relaunched on another port.",
        "sparkgate_engines_warm":
            "Engines started ahead with no tenant yet, by backend (launch.warm_engines and warm_engines_per_team).",
        "sparkgate_state_records_rejected_total":
            "Shared-state records and messages whose seal did not verify (or replayed messages), by kind (record, message); none was used.",
        "sparkgate_sessions_expired_total":
            "Sessions Sparkgate released on their backend, by reason (idle: session_idle_seconds; lifetime: max_session_seconds).",
        "sparkgate_backend_up": "1 when the last connection attempt to a backend endpoint succeeded, else 0.",
        "sparkgate_backend_errors_total": "Failed connections and broken streams to a backend.",
        "sparkgate_tls_handshake_failures_total": "Client TLS handshakes that failed.",
        "sparkgate_connections": "Client connections, by state (open, draining).",
        "sparkgate_config_reloads_total": "Configuration reloads, by result (success, failure).",
        "sparkgate_build_info": "Always 1; the version label names the running build.",
        "sparkgate_limit_events_total":
            "Connections, streams and calls a limit closed or refused, by limit (see the README's Limits and abuse section).",
        "sparkgate_buffered_bytes":
            "Bytes all calls together hold in the gateway (limits.max_buffered_bytes bounds it).",
    ]

    /// `exposition` with a `# HELP` line before each `# TYPE` line of a metric that has a text.
    public static func annotate(_ exposition: [UInt8]) -> [UInt8] {
        let typePrefix = Array("# TYPE ".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(exposition.count + texts.count * 96)
        var lineStart = 0
        while lineStart < exposition.count {
            let lineEnd = exposition[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? exposition.count
            let line = exposition[lineStart..<lineEnd]
            if line.starts(with: typePrefix) {
                let rest = line.dropFirst(typePrefix.count)
                let name = String(decoding: rest.prefix { $0 != UInt8(ascii: " ") }, as: UTF8.self)
                if let help = texts[name] { out.append(contentsOf: "# HELP \(name) \(help)\n".utf8) }
            }
            out.append(contentsOf: line)
            if lineEnd < exposition.count { out.append(UInt8(ascii: "\n")) }
            lineStart = lineEnd + 1
        }
        return out
    }
}
