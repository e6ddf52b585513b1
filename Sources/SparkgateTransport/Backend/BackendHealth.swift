import Logging
import SparkgateCore
import SparkgateObservability
import Synchronization

/// The health of every backend endpoint, shared by all calls; health checks and failed connections update it.
package final class BackendHealth: Sendable {
    private struct Key: Hashable {
        var backend: String
        var endpoint: HostPort
    }
    private let states = Mutex<[Key: EndpointHealth]>([:])
    package let metrics: GatewayMetrics
    package let logger: Logger

    package init(metrics: GatewayMetrics, logger: Logger) {
        self.metrics = metrics
        self.logger = logger
    }

    package func isHealthy(_ backend: String, _ endpoint: HostPort) -> Bool {
        states.withLock { $0[Key(backend: backend, endpoint: endpoint)]?.healthy ?? true }
    }

    /// Records an outcome (a check, or a connection attempt) and reports a change of state.
    package func record(
        _ backend: String, _ endpoint: HostPort, ok: Bool, settings: HealthSettings, reason: String? = nil
    ) {
        let key = Key(backend: backend, endpoint: endpoint)
        let (changed, healthy) = states.withLock { table in
            var health = table[key] ?? EndpointHealth()
            let changed = health.record(ok: ok, settings: settings)
            table[key] = health
            return (changed, health.healthy)
        }
        metrics.backendHealth(backend, endpoint: endpoint.description, healthy: healthy)
        guard let changed else { return }
        if changed {
            logger.notice(
                "backend endpoint is healthy again; it takes new sessions",
                metadata: ["backend": "\(backend)", "endpoint": "\(endpoint)"])
        } else {
            logger.warning(
                "backend endpoint failed its health checks; it takes no new sessions",
                metadata: ["backend": "\(backend)", "endpoint": "\(endpoint)", "reason": "\(reason ?? "")"])
        }
    }

    /// Backends (of `backends`) with no healthy endpoint.
    package func backendsWithoutHealthyEndpoint(_ backends: [SparkgateConfig.Backend]) -> [String] {
        backends.filter { b in !b.endpoints.contains { isHealthy(b.name, $0) } }.map(\.name).sorted()
    }
}
