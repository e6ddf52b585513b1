import Logging
import SparkgateCore
import Synchronization

/// Re-reads the configuration file (SIGHUP or `POST /v1/reload`): keys, JWKS, revocations, teams, quotas,
/// backends and the TLS certificate. A bad file keeps the running configuration and says why.
public final class Reloader: Sendable {
    let runtime: GatewayRuntime
    let file: String
    private let serial = Mutex<Bool>(false)

    public init(runtime: GatewayRuntime, file: String) {
        self.runtime = runtime
        self.file = file
    }

    /// Reloads; returns nil on success or the reason the new configuration was refused.
    @discardableResult
    public func reload() async -> String? {
        guard serial.withLock({ busy in if busy { return false }; busy = true; return true }) else {
            return "a reload is already running"
        }
        defer { serial.withLock { $0 = false } }
        let old = runtime.state.config
        do {
            let config = try SparkgateConfig.load(file: file)
            let changed = RestartOnlyKeys.changed(from: old, to: config)
            if !changed.isEmpty {
                return refused(changed.map { "restart to change \($0)" }.joined(separator: "; ") + " (a reload cannot change it; the running process keeps its value)")
            }
            let state = try await GatewayStateLoader.load(config, logger: runtime.logger)
            runtime.install(state)
            runtime.metrics.configReloaded(success: true)
            runtime.logger.info("configuration reloaded", metadata: ["config.file": "\(file)", "teams": "\(config.teams.count)", "backends": "\(config.backends.count)"])
            return nil
        } catch let error as ConfigError {
            return refused(error.description)
        } catch let error as GatewayStateLoader.Failure {
            return refused(error.description)
        } catch {
            return refused("\(error)")
        }
    }

    private func refused(_ reason: String) -> String {
        runtime.metrics.configReloaded(success: false)
        runtime.logger.error("configuration reload refused; keeping the running configuration", metadata: ["config.file": "\(file)", "reason": "\(reason)"])
        return reason
    }
}
