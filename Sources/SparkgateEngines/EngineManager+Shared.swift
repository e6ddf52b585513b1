import NIOCore
import SparkgateCore
import SparkgateTransport
import SparkgateSharedState

/// A launch pool shared by every replica (`state.kind: redis`): the replicas agree in Redis which engine
/// serves a share key (one over all of them, within `max_engines` counted over all), route to engines other
/// replicas launched, count every replica's sessions toward idleness, and learn within a heartbeat (or at
/// once, over pub/sub) that an engine stopped, died, or lost the replica that launched it.
extension EngineManager {
    /// Finds `key`'s engine with the other replicas.
    package func acquireShared(_ key: EngineShareKey, settings: LaunchSettings, bound: String?, promise: EventLoopPromise<EngineAnswer>) {
        guard let shared else { return acquire(key, settings: settings, bound: bound, promise: promise) }
        let state = inner.value
        if let bound {
            if state.registry.engines[bound] != nil { return acquire(key, settings: settings, bound: bound, promise: promise) }
            if let target = state.remote[bound] { return promise.succeed(.ready(target)) }
            // Another replica's engine this one has not routed to yet, or one that is gone: its record says.
            shared.lookUp(bound, on: loop).assumeIsolated().whenComplete { [self] result in
                switch result {
                case .success(let engine?) where engine.state == .ready:
                    promise.succeed(.ready(remember(engine)))
                case .success(let engine?) where engine.state == .starting:
                    waitForRemote(engine.id, key: key, promises: [promise], until: WallClock.now() + settings.startupTimeoutSeconds)
                case .success:
                    promise.succeed(.lost(EngineRegistry.sessionLost(bound: bound, key: key, what: "has stopped")))
                case .failure(let error):
                    promise.fail(Self.unreachable(error))
                }
            }
            return
        }
        if state.registry.engine(for: key) != nil { return acquire(key, settings: settings, bound: nil, promise: promise) }
        if state.acquiring[key] != nil {
            state.acquiring[key]!.append(promise)
            return
        }
        let now = WallClock.now()
        guard let proposal = state.registry.propose(
            key, settings: settings, host: settings.host, now: now, make: Self.makeIdentity(key), portIsFree: EngineProcess.portIsFree)
        else {
            return promise.fail(SparkgateError.resourceExhausted("backend '\(key.backend)': no free port in ports \(settings.ports.lowerBound)-\(settings.ports.upperBound) for a new engine"))
        }
        state.acquiring[key] = [promise]
        let warm = state.registry.readyWarmEngine(backend: key.backend)?.id
        shared.acquire(proposal, adopting: warm, settings: settings, now: now, on: loop).assumeIsolated().whenComplete { [self] result in
            let waiting = state.acquiring.removeValue(forKey: key) ?? []
            switch result {
            case .success(.launch):
                state.registry.register(proposal)
                state.waiters[proposal.id, default: []] += waiting
                state.backends.insert(key.backend)
                start(proposal, settings: settings)
            case .success(.adopt):
                guard let warm, let engine = state.registry.adopt(warm, for: key, now: WallClock.now()) else {
                    for p in waiting { p.fail(SparkgateError.unavailable("backend '\(key.backend)': the warm engine went away while \(key) took it; retry")) }
                    return
                }
                for p in waiting { p.succeed(.ready(Self.target(engine))) }
            case .success(.exists(let engine)) where engine.replica == shared.replica:
                // Launched here: the registry decides (it may be starting, or already gone).
                for p in waiting { acquire(key, settings: settings, bound: nil, promise: p) }
            case .success(.exists(let engine)):
                switch engine.state {
                case .ready:
                    let target = remember(engine)
                    for p in waiting { p.succeed(.ready(target)) }
                case .starting:
                    waitForRemote(engine.id, key: key, promises: waiting, until: WallClock.now() + settings.startupTimeoutSeconds)
                case .stopping:
                    for p in waiting { p.fail(SparkgateError.unavailable("engine \(engine.id) (\(key)) is stopping on another replica; retry shortly")) }
                }
            case .success(.refused(let error)):
                for p in waiting { p.fail(error) }
            case .failure(let error):
                for p in waiting { p.fail(Self.unreachable(error)) }
            }
            publishGauges()
        }
    }

    /// Polls the record of an engine another replica is starting until it is ready, gone, or late.
    package func waitForRemote(_ id: String, key: EngineShareKey, promises: [EventLoopPromise<EngineAnswer>], until deadline: Double) {
        guard let shared else { return }
        loop.scheduleTask(in: .milliseconds(250)) { [self] in
            shared.lookUp(id, on: loop).assumeIsolated().whenComplete { [self] result in
                switch result {
                case .success(let engine?) where engine.state == .ready:
                    let target = remember(engine)
                    for p in promises { p.succeed(.ready(target)) }
                case .success(let engine?) where engine.state == .starting && WallClock.now() < deadline:
                    waitForRemote(id, key: key, promises: promises, until: deadline)
                case .success:
                    for p in promises { p.fail(SparkgateError.unavailable("engine \(id) (\(key)), launched by another replica, did not become ready; retry")) }
                case .failure(let error):
                    for p in promises { p.fail(Self.unreachable(error)) }
                }
            }
        }
    }

    /// Another replica's engine this replica routes to (its own calls find it in the directory too).
    package func remember(_ engine: SharedEngine) -> EngineTarget {
        let target = EngineTarget(id: engine.id, address: engine.address, token: engine.token, pid: nil)
        inner.value.remote[engine.id] = target
        directory.add(target)
        return target
    }

    /// Another replica's engine stopped or died (or its replica did): sessions bound to it are told at their
    /// next call, and its connections close.
    package func remoteEngineGone(_ id: String) {
        guard let target = inner.value.remote.removeValue(forKey: id) else { return }
        directory.remove(id)
        let backend = current().backends.values.first { $0.launch != nil }?.name ?? ""
        pool.forget(BackendEndpoint(backend: backend, address: target.address, tls: false))
        logger.info("another replica's engine is gone", metadata: ["engine": "\(id)"])
    }

    /// Every heartbeat: renews this replica's engines, reports the sessions it holds on each engine, learns
    /// the sessions other replicas hold on its own, and forgets other replicas' engines whose records are gone.
    package func sharedHeartbeat(now: Double) async {
        guard let shared else { return }
        let (own, remote) = (try? await loop.submit { [self] in
            (Array(inner.value.registry.engines.values.filter { $0.state != .stopping }), Array(inner.value.remote.keys))
        }.get()) ?? ([], [])
        let counts = ledger.withLock { $0.sessionsPerEngine() }
        do {
            try await shared.renew(own, now: now, on: loop).get()
            try await shared.reportUse(counts, now: now, on: loop).get()
            let elsewhere = try await shared.useElsewhere(own.map(\.id), now: now, on: loop).get()
            var missing: [String] = []
            for id in remote where try await shared.lookUp(id, on: loop).get() == nil { missing.append(id) }
            let gone = missing
            try await loop.submit { [self] in
                inner.value.usedElsewhere = elsewhere
                for id in gone { remoteEngineGone(id) }
            }.get()
        } catch {
            shared.shared.countError("engines")
            logger.warning("shared state (redis) failed", metadata: ["operation": "engines", "error": "\(error)"])
        }
    }

    package static func unreachable(_ error: any Error) -> SparkgateError {
        .unavailable("shared state (redis) unreachable: \(error); which replica runs this engine cannot be told; retry shortly")
    }
}
