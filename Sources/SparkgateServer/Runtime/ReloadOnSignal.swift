import ServiceLifecycle
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport
import UnixSignals

/// Reloads the configuration on SIGHUP.
public struct ReloadOnSignal: Service {
    let reloader: Reloader

    public init(reloader: Reloader) {
        self.reloader = reloader
    }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                await reloader.reload()
            }
        }
    }
}
