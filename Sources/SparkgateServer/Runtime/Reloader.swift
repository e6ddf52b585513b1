import Logging
import SparkgateCore
import SparkgateEngines
import SparkgateObservability
import SparkgateSharedState
import SparkgateTransport
import Synchronization

/// Re-reads the configuration file (SIGHUP or `POST /v1/reload`): keys, JWKS, revocations, teams, quotas,
/// backends and the TLS certificate. A bad file keeps the running configuration and says why.
public final class Reloader: Sendable {
    let current: @Sendable () -> GatewayGeneration
    let install: @Sendable (GatewayGeneration) -> Void
    let metrics: GatewayMetrics
    let logger: Logger
    let file: String
    private let serial = Mutex<Bool>(false)

    init(
        current: @escaping @Sendable () -> GatewayGeneration, install: @escaping @Sendable (GatewayGeneration) -> Void,
        metrics: GatewayMetrics, logger: Logger, file: String
    ) {
        self.current = current
        self.install = install
        self.metrics = metrics
        self.logger = logger
        self.file = file
    }

    public convenience init(runtime: GatewayRuntime, file: String) {
        self.init(
            current: { runtime.state }, install: { runtime.install($0) }, metrics: runtime.metrics,
            logger: runtime.logger, file: file)
    }

    /// Reloads; returns nil on success or the reason the new configuration was refused.
    @discardableResult
    public func reload() async -> String? {
        guard
            serial.withLock({ busy in
                if busy { return false }
                busy = true
                return true
            })
        else {
            return "a reload is already running"
        }
        defer { serial.withLock { $0 = false } }
        let old = current().config
        do {
            let config = try SparkgateConfig.load(file: file)
            let changed = RestartOnlyKeys.changed(from: old, to: config)
            if !changed.isEmpty {
                return refused(
                    changed.map { "restart to change \($0)" }.joined(separator: "; ")
                        + " (a reload cannot change it; the running process keeps its value)")
            }
            let state = try await GatewayGenerationLoader.load(config, logger: logger)
            install(state)
            metrics.configReloaded(success: true)
            logger.info(
                "configuration reloaded",
                metadata: [
                    "config.file": "\(file)", "teams": "\(config.teams.count)", "backends": "\(config.backends.count)",
                ])
            return nil
        } catch let error as ConfigError {
            return refused(error.description)
        } catch let error as GatewayGenerationLoader.Failure {
            return refused(error.description)
        } catch {
            return refused("\(error)")
        }
    }

    private func refused(_ reason: String) -> String {
        metrics.configReloaded(success: false)
        logger.error(
            "configuration reload refused; keeping the running configuration",
            metadata: ["config.file": "\(file)", "reason": "\(reason)"])
        return reason
    }
}
