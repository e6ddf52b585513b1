import NIOCore
import ServiceLifecycle
import SparkgateCore
import SparkgateEngines
import SparkgateRedis
import SparkgateSharedState
import SparkgateTransport

/// Keeps this replica's part of the shared state alive: every heartbeat it checks whether Redis lost its
/// records (and writes back what it holds) or renews what it holds; it ends the streams of sessions an
/// operator killed on another replica and forgets what other replicas released or ended; with Sentinel,
/// it follows the master's failovers.
public final class SharedStateService: Service, Sendable {
    let shared: SharedState?
    let calls: CallRegistry
    let ledger: LocalLedger
    let engines: EngineManager
    let group: any EventLoopGroup

    init(
        shared: SharedState?, calls: CallRegistry, ledger: LocalLedger, engines: EngineManager,
        group: any EventLoopGroup
    ) {
        self.shared = shared
        self.calls = calls
        self.ledger = ledger
        self.engines = engines
        self.group = group
    }

    public convenience init(runtime: GatewayRuntime) {
        self.init(
            shared: runtime.shared, calls: runtime.calls, ledger: runtime.ledger, engines: runtime.engines,
            group: runtime.group)
    }

    public func run() async throws {
        guard let shared else {
            // Nothing to do with in-memory state; returning early would stop the whole service group.
            try? await gracefulShutdown()
            return
        }
        let (calls, ledger, engines, eventLoops) = (self.calls, self.ledger, self.engines, self.group)
        let kills = shared.keys.killChannel
        let subscriber = RedisSubscriber(
            client: shared.client, channels: [kills, shared.keys.endedChannel], group: eventLoops
        ) { channel, payload in
            // Only what a replica sealed, within the replay window, is acted on.
            guard let body = shared.open(String(decoding: payload, as: UTF8.self), now: WallClock.now()) else { return }
            if channel == kills {
                guard let session = SharedKeys.session(fromKillMessage: body) else { return }
                Self.killed(session, calls: calls, ledger: ledger)
            } else if let event = SharedEvent(message: body) {
                shared.received(event, now: WallClock.now())
            }
        }
        // Redis answering again after failing (restarted, failed over) is when it most likely lost records:
        // check at once rather than at the next heartbeat.
        let (recoveries, recovered) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        shared.client.onRecovery { recovered.yield() }
        await withDiscardingTaskGroup { group in
            group.addTask { try? await subscriber.run() }
            if shared.settings.redis.sentinel != nil {
                let watcher = SentinelWatcher(client: shared.client, group: eventLoops)
                group.addTask { try? await watcher.run() }
            }
            group.addTask {
                await cancelWhenGracefulShutdown {
                    await shared.heartbeat(now: WallClock.now())
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(shared.settings.redis.heartbeatSeconds))
                        if Task.isCancelled { break }
                        await shared.heartbeat(now: WallClock.now())
                        await engines.sharedHeartbeat(now: WallClock.now())
                    }
                }
            }
            group.addTask {
                await cancelWhenGracefulShutdown {
                    for await _ in recoveries { await shared.heartbeat(now: WallClock.now(), afterFailure: true) }
                }
            }
        }
        recovered.finish()
    }

    /// An operator killed `session` (here or on another replica): end its streams here and forget it.
    static func killed(_ session: SessionKey, calls: CallRegistry, ledger: LocalLedger) {
        calls.terminate(session: session, with: SparkgateError(.cancelled, "an operator ended this session"))
        _ = ledger.withLock { $0.sessionReleased(session, now: WallClock.now()) }
    }
}
