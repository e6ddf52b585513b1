import NIOCore
import SparkgateCore
import SparkgateRESP
import SparkgateRedis

/// The records of launched engines that every replica shares (`SharedEngineScripts`): which engine serves a
/// share key, where it listens, its process and state, how many sessions each replica holds on it. Every
/// record is sealed by the replica that wrote it (`RecordSeal`), and none holds a token.
package struct SharedEngineRecords: Sendable {
    package let shared: SharedState

    package init(shared: SharedState) {
        self.shared = shared
    }

    package static let acquireScript = RedisScript(SharedEngineScripts.acquire)
    package static let warmScript = RedisScript(SharedEngineScripts.warm)
    package static let renewScript = RedisScript(SharedEngineScripts.renew)
    package static let goneScript = RedisScript(SharedEngineScripts.gone)
    package static let unmapScript = RedisScript(SharedEngineScripts.unmap)

    package var client: RedisClient { shared.client }
    package var keys: SharedKeys { shared.keys }
    package var replica: String { shared.origin }
    package var seal: RecordSeal { shared.seal }

    /// Proposes `engine` for its key (or gives the key the warm engine `adopting`, reserved for this call);
    /// completes with what every replica now agrees serves the key.
    package func acquire(
        _ engine: EngineRegistry.Engine, adopting: EngineRegistry.Engine?, settings: LaunchSettings, now: Double,
        on loop: any EventLoop
    )
        -> EventLoopFuture<SharedEngineAcquisition.Verdict>
    {
        let request = SharedEngineAcquisition(
            engine.key, engine: engine, adopting: adopting, settings: settings, replica: replica, now: now,
            holdingSeconds: shared.holdingSeconds,
            keys: keys, seal: seal)
        return client.run(Self.acquireScript, keys: request.keys, arguments: request.arguments, on: loop)
            .flatMapThrowing { reply in
                let texts = reply.array?.map(\.string) ?? []
                guard
                    let verdict = SharedEngineAcquisition.verdict(
                        texts, key: engine.key, settings: settings, seal: seal)
                else {
                    throw RedisError.protocolViolation("unexpected reply to the engine script: \(texts.prefix(3))")
                }
                if case .rejected = verdict { shared.rejected("record") }
                return verdict
            }
    }

    /// Counts a warm engine among the backend's engines; false when `max_engines` is reached over all replicas.
    package func registerWarm(
        _ engine: EngineRegistry.Engine, settings: LaunchSettings, now: Double, on loop: any EventLoop
    ) -> EventLoopFuture<Bool> {
        let document = SharedEngineArguments.Warm(
            now: now, expiry: now + shared.holdingSeconds, maxEngines: settings.maxEngines, engine: record(engine))
        return client.run(
            Self.warmScript, keys: [keys.engines(backend: engine.key.backend), keys.engine(engine.id)],
            arguments: [SharedEngineArguments.json(document)],
            on: loop
        ).map { $0.array?.first?.string == "ok" }
    }

    /// The record of engine `id`: valid, missing (stopped, died, or its replica died), or rejected.
    package func lookUp(_ id: String, on loop: any EventLoop) -> EventLoopFuture<SharedEngine.Read> {
        client.send(
            (["HMGET", keys.engine(id)] + SharedEngine.fieldNames + [SharedEngine.sealField]).map { Array($0.utf8) },
            on: loop
        ).map { reply in
            let read = SharedEngine.read(id: id, (reply.array ?? []).map(\.string), seal: seal)
            if read == .rejected { shared.rejected("record") }
            return read
        }
    }

    /// Renews the records of this replica's engines, rewriting every field as this replica knows it.
    package func renew(_ engines: [EngineRegistry.Engine], now: Double, on loop: any EventLoop) -> EventLoopFuture<Void>
    {
        guard !engines.isEmpty else { return loop.makeSucceededVoidFuture() }
        var names: [String] = []
        for engine in engines {
            names += [
                keys.engine(engine.id), engine.warm ? keys.engine("") : keys.engineFor(engine.key),
                keys.engines(backend: engine.key.backend),
                keys.teamEngines(backend: engine.key.backend, team: engine.key.team ?? ""),
            ]
        }
        let document = SharedEngineArguments.Renew(
            now: now, expiry: now + shared.holdingSeconds, enginePrefix: keys.enginePrefix, engines: engines.map(record)
        )
        return client.run(Self.renewScript, keys: names, arguments: [SharedEngineArguments.json(document)], on: loop)
            .map { _ in }
    }

    /// Engine `engine` of this replica stopped or died: its records go, and every replica is told.
    package func gone(_ engine: EngineRegistry.Engine, on loop: any EventLoop) -> EventLoopFuture<Void> {
        client.run(
            Self.goneScript,
            keys: [
                keys.engine(engine.id), keys.engineFor(engine.key), keys.engines(backend: engine.key.backend),
                keys.teamEngines(backend: engine.key.backend, team: engine.key.team ?? ""), keys.engineUse(engine.id),
            ],
            arguments: [
                engine.id, keys.endedChannel, shared.sealed(SharedEvent(origin: replica, kind: .engineGone(engine.id))),
            ], on: loop
        ).map { _ in }
    }

    /// Removes `key`'s name for engine `id` if it still names it: no engine of this replica stands behind it
    /// (a mapping left by a launch that never happened), or its record does not verify.
    package func unmap(_ key: EngineShareKey, id: String, on loop: any EventLoop) -> EventLoopFuture<Void> {
        client.run(Self.unmapScript, keys: [keys.engineFor(key)], arguments: [id], on: loop).map { _ in }
    }

    /// Records how many sessions this replica holds on each engine (for the launching replica's idle count).
    package func reportUse(_ counts: [String: Int], now: Double, on loop: any EventLoop) -> EventLoopFuture<Void> {
        let expiry = SharedAdmission.number(now + shared.holdingSeconds)
        let milliseconds = String(Int64((shared.holdingSeconds + 1) * 1000))
        let writes = counts.map { id, count in
            let value = "\(count) \(expiry) \(seal.seal(.engineUse, [id, replica, String(count), expiry]))"
            return client.send(["HSET", keys.engineUse(id), replica, value].map { Array($0.utf8) }, on: loop).flatMap {
                _ in
                client.send(["PEXPIRE", keys.engineUse(id), milliseconds].map { Array($0.utf8) }, on: loop)
            }.map { _ in }
        }
        return EventLoopFuture.andAllSucceed(writes, on: loop)
    }

    /// Sessions other replicas hold on each of `ids`, from their unexpired, sealed reports.
    package func useElsewhere(_ ids: [String], now: Double, on loop: any EventLoop) -> EventLoopFuture<[String: Int]> {
        let reads = ids.map { id in
            client.send(["HGETALL", keys.engineUse(id)].map { Array($0.utf8) }, on: loop).map {
                reply -> (String, Int) in
                let fields = (reply.array ?? []).compactMap(\.string)
                var total = 0
                for i in stride(from: 0, to: fields.count - 1, by: 2) where fields[i] != replica {
                    let parts = fields[i + 1].split(separator: " ").map(String.init)
                    guard parts.count == 3, let n = Int(parts[0]), let expiry = Double(parts[1]),
                        seal.verifies(parts[2], .engineUse, [id, fields[i], parts[0], parts[1]])
                    else {
                        shared.rejected("record")
                        continue
                    }
                    if expiry > now { total += n }
                }
                return (id, total)
            }
        }
        return EventLoopFuture.whenAllSucceed(reads, on: loop).map { Dictionary($0, uniquingKeysWith: +) }
    }

    private func record(_ engine: EngineRegistry.Engine) -> SharedEngineArguments.Record {
        SharedEngineArguments.Record(id: engine.id, fields: SharedEngine(engine, replica: replica).hash(seal))
    }
}
