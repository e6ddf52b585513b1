import NIOCore
import ServiceLifecycle
import SparkgateCore
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport

/// Checks every endpoint of every backend at its `health.interval_seconds`, with a real Spark Connect call
/// and the backend's token, so an endpoint that accepts connections but cannot serve counts as failing.
public final class HealthChecker: Service, Sendable {
    let current: @Sendable () -> GatewayGeneration
    let health: BackendHealth
    let calls: BackendCalls
    let group: any EventLoopGroup

    init(
        current: @escaping @Sendable () -> GatewayGeneration, health: BackendHealth, calls: BackendCalls,
        group: any EventLoopGroup
    ) {
        self.current = current
        self.health = health
        self.calls = calls
        self.group = group
    }

    public convenience init(runtime: GatewayRuntime) {
        self.init(current: { runtime.state }, health: runtime.health, calls: runtime.backendCalls, group: runtime.group)
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var due: [String: Double] = [:]
            while !Task.isCancelled {
                let state = self.current()
                let now = WallClock.now()
                for backend in state.config.backends.values where now >= due[backend.name, default: 0] {
                    due[backend.name] = now + backend.health.intervalSeconds
                    for endpoint in backend.endpoints { self.check(backend, endpoint, state: state) }
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    private func check(_ backend: SparkgateConfig.Backend, _ endpoint: HostPort, state: GatewayGeneration) {
        let health = self.health
        calls.check(
            backend: backend.name, address: endpoint, access: state.backendAccess,
            timeoutSeconds: backend.health.timeoutSeconds, on: group.next()
        )
        .whenComplete { result in
            switch result {
            case .success(let status) where status.code == .ok:
                health.record(backend.name, endpoint, ok: true, settings: backend.health)
            case .success(let status):
                health.record(
                    backend.name, endpoint, ok: false, settings: backend.health,
                    reason: "\(status.code.name): \(status.message)")
            case .failure(let error):
                health.record(backend.name, endpoint, ok: false, settings: backend.health, reason: "\(error)")
            }
        }
    }
}
