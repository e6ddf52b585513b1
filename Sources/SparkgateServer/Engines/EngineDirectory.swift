import NIOCore
import SparkgateCore
import Synchronization

/// Where a ready engine listens and the token it accepts.
struct EngineTarget: Sendable, Equatable {
    var id: String
    var address: HostPort
    var token: String
    /// The engine's process, when this replica launched it (its port can then be proven, `PortProof`).
    var pid: Int32?
}

/// The ready engines, readable from any thread: Sparkgate's own calls (interrupts, releases) find a
/// session's engine here.
final class EngineDirectory: Sendable {
    private let targets = Mutex<[String: EngineTarget]>([:])

    func target(_ id: String) -> EngineTarget? { targets.withLock { $0[id] } }
    func add(_ target: EngineTarget) { targets.withLock { $0[target.id] = target } }
    func remove(_ id: String) { _ = targets.withLock { $0.removeValue(forKey: id) } }

    /// The engine this replica launched that listens at `address`, if any.
    func launched(at address: HostPort) -> EngineTarget? {
        targets.withLock { $0.values.first { $0.address == address && $0.pid != nil } }
    }
}

/// Connects to backends, and before any new connection to an engine this replica launched, proves that the
/// listener on its port is still the engine's: an engine that died leaves its port to whoever binds it next.
struct ProvingConnector: BackendConnector {
    let inner: any BackendConnector
    let engines: EngineDirectory

    func connect(to endpoint: BackendEndpoint, on eventLoop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<any Channel> {
        if let engine = engines.launched(at: endpoint.address), let pid = engine.pid,
            EnginePortProver.verdict(pid: pid, port: endpoint.address.port) != .proven
        {
            return eventLoop.makeFailedFuture(SparkgateError.unavailable(
                "engine \(engine.id)'s port \(endpoint.address.port) is no longer held by the engine Sparkgate launched; nothing was sent to it"))
        }
        return inner.connect(to: endpoint, on: eventLoop, timeout: timeout)
    }
}
