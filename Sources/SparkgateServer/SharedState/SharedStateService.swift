import NIOCore
import ServiceLifecycle
import SparkgateCore
import SparkgateRedis

/// Keeps this replica's part of the shared state alive: renews what it holds every heartbeat, and ends the
/// streams of sessions an operator killed on another replica.
public final class SharedStateService: Service, Sendable {
    let runtime: GatewayRuntime

    public init(runtime: GatewayRuntime) {
        self.runtime = runtime
    }

    public func run() async throws {
        guard let shared = runtime.shared else {
            // Nothing to do with in-memory state; returning early would stop the whole service group.
            try? await gracefulShutdown()
            return
        }
        let runtime = self.runtime
        let subscriber = RedisSubscriber(client: shared.client, channel: shared.keys.killChannel, group: runtime.group) { payload in
            guard let session = SharedKeys.session(fromKillMessage: String(decoding: payload, as: UTF8.self)) else { return }
            Self.killed(session, runtime: runtime)
        }
        await withDiscardingTaskGroup { group in
            group.addTask { try? await subscriber.run() }
            group.addTask {
                await cancelWhenGracefulShutdown {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(shared.settings.redis.heartbeatSeconds))
                        if Task.isCancelled { break }
                        await shared.renew(now: WallClock.now())
                    }
                }
            }
        }
    }

    /// An operator killed `session` (here or on another replica): end its streams here and forget it.
    static func killed(_ session: SessionKey, runtime: GatewayRuntime) {
        runtime.calls.terminate(session: session, with: SparkgateError(.cancelled, "an operator ended this session"))
        _ = runtime.ledger.withLock { $0.sessionReleased(session, now: WallClock.now()) }
    }
}
