import NIOCore
import SparkgateCore
import SparkgateRESP
import SparkgateRedis

/// The records of launched engines that every replica shares (`SharedEngineScripts`): which engine serves a
/// share key, where it listens and with which token, how many sessions each replica holds on it.
package struct SharedEngineRecords: Sendable {
    package let shared: SharedState

    package init(shared: SharedState) {
        self.shared = shared
    }

    package static let acquireScript = RedisScript(SharedEngineScripts.acquire)
    package static let warmScript = RedisScript(SharedEngineScripts.warm)
    package static let renewScript = RedisScript(SharedEngineScripts.renew)
    package static let goneScript = RedisScript(SharedEngineScripts.gone)

    package var client: RedisClient { shared.client }
    package var keys: SharedKeys { shared.keys }
    package var replica: String { shared.origin }

    /// Proposes `engine` for its key (or gives the key the warm engine `adopting`); completes with what every
    /// replica now agrees serves the key.
    package func acquire(_ engine: EngineRegistry.Engine, adopting: String?, settings: LaunchSettings, now: Double, on loop: any EventLoop)
        -> EventLoopFuture<SharedEngineAcquisition.Verdict>
    {
        let request = SharedEngineAcquisition(
            engine.key, engine: engine, adopting: adopting, settings: settings, replica: replica, host: engine.host, now: now,
            holdingSeconds: shared.holdingSeconds, keys: keys)
        return client.run(Self.acquireScript, keys: request.keys, arguments: request.arguments, on: loop).flatMapThrowing { reply in
            let texts = reply.array?.compactMap(\.string) ?? []
            guard let verdict = SharedEngineAcquisition.verdict(texts, key: engine.key, settings: settings) else {
                throw RedisError.protocolViolation("unexpected reply to the engine script: \(texts.prefix(3))")
            }
            return verdict
        }
    }

    /// Counts a warm engine among the backend's engines; false when `max_engines` is reached over all replicas.
    package func registerWarm(_ engine: EngineRegistry.Engine, settings: LaunchSettings, now: Double, on loop: any EventLoop) -> EventLoopFuture<Bool> {
        let arguments = [
            SharedAdmission.number(now), SharedAdmission.number(now + shared.holdingSeconds), String(settings.maxEngines), engine.id, replica, engine.host,
            String(engine.port), engine.token, engine.key.backend,
        ]
        return client.run(Self.warmScript, keys: [keys.engines(backend: engine.key.backend), keys.engine(engine.id)], arguments: arguments, on: loop)
            .map { $0.array?.first?.string == "ok" }
    }

    /// The record of engine `id`, or nil when it is gone (stopped, died, or its replica died).
    package func lookUp(_ id: String, on loop: any EventLoop) -> EventLoopFuture<SharedEngine?> {
        client.send(["HMGET", keys.engine(id), "s", "h", "p", "tok", "r"].map { Array($0.utf8) }, on: loop).map { reply in
            SharedEngine(id: id, fields: (reply.array ?? []).map(\.string))
        }
    }

    /// Renews the records of this replica's engines, with their states.
    package func renew(_ engines: [EngineRegistry.Engine], now: Double, on loop: any EventLoop) -> EventLoopFuture<Void> {
        guard !engines.isEmpty else { return loop.makeSucceededVoidFuture() }
        var names: [String] = []
        var arguments = [SharedAdmission.number(now), SharedAdmission.number(now + shared.holdingSeconds)]
        for engine in engines {
            names += [
                keys.engine(engine.id), engine.warm ? keys.engine("") : keys.engineFor(engine.key), keys.engines(backend: engine.key.backend),
                keys.teamEngines(backend: engine.key.backend, team: engine.key.team ?? ""),
            ]
            arguments += [engine.id, engine.state.rawValue]
        }
        return client.run(Self.renewScript, keys: names, arguments: arguments, on: loop).map { _ in }
    }

    /// Engine `engine` of this replica stopped or died: its records go, and every replica is told.
    package func gone(_ engine: EngineRegistry.Engine, on loop: any EventLoop) -> EventLoopFuture<Void> {
        client.run(
            Self.goneScript,
            keys: [
                keys.engine(engine.id), keys.engineFor(engine.key), keys.engines(backend: engine.key.backend),
                keys.teamEngines(backend: engine.key.backend, team: engine.key.team ?? ""), keys.engineUse(engine.id),
            ],
            arguments: [engine.id, keys.endedChannel, SharedEvent(origin: replica, kind: .engineGone(engine.id)).message], on: loop
        ).map { _ in }
    }

    /// Records how many sessions this replica holds on each engine (for the launching replica's idle count).
    package func reportUse(_ counts: [String: Int], now: Double, on loop: any EventLoop) -> EventLoopFuture<Void> {
        let expiry = SharedAdmission.number(now + shared.holdingSeconds)
        let milliseconds = String(Int64((shared.holdingSeconds + 1) * 1000))
        let writes = counts.map { id, count in
            client.send(["HSET", keys.engineUse(id), replica, "\(count) \(expiry)"].map { Array($0.utf8) }, on: loop).flatMap { _ in
                client.send(["PEXPIRE", keys.engineUse(id), milliseconds].map { Array($0.utf8) }, on: loop)
            }.map { _ in }
        }
        return EventLoopFuture.andAllSucceed(writes, on: loop)
    }

    /// Sessions other replicas hold on each of `ids`, from their unexpired reports.
    package func useElsewhere(_ ids: [String], now: Double, on loop: any EventLoop) -> EventLoopFuture<[String: Int]> {
        let reads = ids.map { id in
            client.send(["HGETALL", keys.engineUse(id)].map { Array($0.utf8) }, on: loop).map { reply -> (String, Int) in
                let fields = (reply.array ?? []).compactMap(\.string)
                var total = 0
                for i in stride(from: 0, to: fields.count - 1, by: 2) where fields[i] != replica {
                    let parts = fields[i + 1].split(separator: " ")
                    if parts.count == 2, let n = Int(parts[0]), let expiry = Double(parts[1]), expiry > now { total += n }
                }
                return (id, total)
            }
        }
        return EventLoopFuture.whenAllSucceed(reads, on: loop).map { Dictionary($0, uniquingKeysWith: +) }
    }
}
