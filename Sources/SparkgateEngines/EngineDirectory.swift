import NIOCore
import SparkgateCore
import SparkgateSharedState
import SparkgateTransport
import Synchronization

/// The ready engines, readable from any thread: Sparkgate's own calls (interrupts, releases) find a
/// session's engine here.
package final class EngineDirectory: EngineLookup, Sendable {
    private let targets = Mutex<[String: EngineTarget]>([:])

    package init() {}

    package func target(_ id: String) -> EngineTarget? { targets.withLock { $0[id] } }
    package func add(_ target: EngineTarget) { targets.withLock { $0[target.id] = target } }
    package func remove(_ id: String) { _ = targets.withLock { $0.removeValue(forKey: id) } }

    /// The engine this replica launched that listens at `address`, if any.
    package func launched(at address: HostPort) -> EngineTarget? {
        targets.withLock { $0.values.first { $0.address == address && $0.pid != nil } }
    }
}

/// Connects to backends, and before any new connection to an engine this replica launched, proves that the
/// listener on its port is still the engine's: an engine that died leaves its port to whoever binds it next.
package struct ProvingConnector: BackendConnector {
    package let inner: any BackendConnector
    package let engines: EngineDirectory

    package init(inner: any BackendConnector, engines: EngineDirectory) {
        self.inner = inner
        self.engines = engines
    }

    package func connect(
        to endpoint: BackendEndpoint, on eventLoop: any EventLoop, timeout: TimeAmount
    ) -> EventLoopFuture<any Channel> {
        if let engine = engines.launched(at: endpoint.address), let pid = engine.pid,
            EnginePortProver.verdict(pid: pid, port: endpoint.address.port) != .proven
        {
            return eventLoop.makeFailedFuture(
                SparkgateError.unavailable(
                    "engine \(engine.id)'s port \(endpoint.address.port) is no longer held by the engine Sparkgate launched; nothing was sent to it"
                ))
        }
        return inner.connect(to: endpoint, on: eventLoop, timeout: timeout)
    }
}
