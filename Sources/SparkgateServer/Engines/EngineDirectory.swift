import SparkgateCore
import Synchronization

/// Where a ready engine listens and the token it accepts.
struct EngineTarget: Sendable, Equatable {
    var id: String
    var address: HostPort
    var token: String
}

/// The ready engines, readable from any thread: Sparkgate's own calls (interrupts, releases) find a
/// session's engine here.
final class EngineDirectory: Sendable {
    private let targets = Mutex<[String: EngineTarget]>([:])

    func target(_ id: String) -> EngineTarget? { targets.withLock { $0[id] } }
    func add(_ target: EngineTarget) { targets.withLock { $0[target.id] = target } }
    func remove(_ id: String) { _ = targets.withLock { $0.removeValue(forKey: id) } }
}
