import NIOCore
import SparkgateCore
import SparkgateSharedState
import SparkgateTransport

/// A launch pool shared by every replica (`state.kind: redis`): the replicas agree in Redis which engine
/// serves a share key (one over all of them, within `max_engines` counted over all), route to engines other
/// replicas launched, count every replica's sessions toward idleness, and learn within a heartbeat (or at
/// once, over pub/sub) that an engine stopped, died, or lost the replica that launched it. Nothing read from
/// Redis routes a call unless its seal verifies and it serves exactly the caller's share key.
extension EngineManager {
    /// Finds `key`'s engine with the other replicas; `retries` are left for a mapping that had to be removed.
    package func acquireShared(
        _ key: EngineShareKey, settings: LaunchSettings, bound: String?, promise: EventLoopPromise<EngineAnswer>,
        retries: Int = 1
    ) {
        guard let shared else { return acquire(key, settings: settings, bound: bound, promise: promise) }
        let state = inner.value
        if let bound {
            if state.registry.engines[bound] != nil {
                return acquire(key, settings: settings, bound: bound, promise: promise)
            }
            if let target = state.remote[bound] { return promise.succeed(.ready(target)) }
            // Another replica's engine this one has not routed to yet, or one that is gone: its record says.
            shared.lookUp(bound, on: loop).assumeIsolated().whenComplete { [self] result in
                switch result {
                case .success(.valid(let engine)) where !engine.serves(key, ports: settings.ports):
                    shared.shared.rejected("record")
                    promise.fail(Self.unverified(bound, key: key))
                case .success(.valid(let engine)) where engine.state == .ready:
                    promise.succeed(.ready(remember(engine)))
                case .success(.valid(let engine)) where engine.state == .starting:
                    waitForRemote(
                        engine.id, key: key, settings: settings, promises: [promise],
                        until: WallClock.now() + settings.startupTimeoutSeconds)
                case .success(.rejected):
                    promise.fail(Self.unverified(bound, key: key))
                case .success:
                    promise.succeed(.lost(EngineRegistry.sessionLost(bound: bound, key: key, what: "has stopped")))
                case .failure(let error):
                    promise.fail(Self.unreachable(error))
                }
            }
            return
        }
        if state.registry.engine(for: key) != nil {
            return acquire(key, settings: settings, bound: nil, promise: promise)
        }
        if state.acquiring[key] != nil {
            state.acquiring[key]!.append(promise)
            return
        }
        if let refusal = state.registry.identityRefusal(key, settings: settings) { return promise.fail(refusal) }
        let now = WallClock.now()
        guard
            let proposal = state.registry.propose(
                key, settings: settings, host: settings.host, now: now, make: makeIdentity(key),
                portIsFree: EngineProcess.portIsFree)
        else {
            return promise.fail(
                SparkgateError.resourceExhausted(
                    "backend '\(key.backend)': no free port in ports \(settings.ports.lowerBound)-\(settings.ports.upperBound) for a new engine"
                ))
        }
        state.acquiring[key] = [promise]
        // Offered to this call alone: another tenant's first call in the same moment is not offered it too.
        let warm = state.registry.readyWarmEngine(for: key).flatMap { state.registry.reserve($0.id) }
        shared.acquire(proposal, adopting: warm, settings: settings, now: now, on: loop).assumeIsolated().whenComplete {
            [self] result in
            let waiting = state.acquiring.removeValue(forKey: key) ?? []
            var adopted = false
            if case .success(.adopt) = result { adopted = true }
            if let warm, !adopted { state.registry.unreserve(warm.id) }
            switch result {
            case .success(.launch):
                state.registry.register(proposal)
                state.waiters[proposal.id, default: []] += waiting
                state.backends.insert(key.backend)
                start(proposal, settings: settings)
            case .success(.adopt):
                guard let warm, let engine = state.registry.adopt(warm.id, for: key, now: WallClock.now()) else {
                    for p in waiting {
                        p.fail(
                            SparkgateError.unavailable(
                                "backend '\(key.backend)': the warm engine went away while \(key) took it; retry"))
                    }
                    return
                }
                for p in waiting { p.succeed(.ready(Self.target(engine))) }
                _ = shared.renew([engine], now: WallClock.now(), on: loop)
            case .success(.exists(let engine)) where engine.replica == shared.replica:
                if state.registry.engines[engine.id] != nil {
                    // Launched here: the registry decides (it may be starting, or already gone).
                    for p in waiting { acquire(key, settings: settings, bound: nil, promise: p) }
                } else {
                    // Named for this replica, but no engine of it stands behind the name: the name goes, and
                    // the replicas decide again, never a launch outside Redis.
                    retry(key, id: engine.id, settings: settings, waiting: waiting, retries: retries)
                }
            case .success(.exists(let engine)):
                switch engine.state {
                case .ready:
                    let target = remember(engine)
                    for p in waiting { p.succeed(.ready(target)) }
                case .starting:
                    waitForRemote(
                        engine.id, key: key, settings: settings, promises: waiting,
                        until: WallClock.now() + settings.startupTimeoutSeconds)
                case .stopping:
                    for p in waiting {
                        p.fail(
                            SparkgateError.unavailable(
                                "engine \(engine.id) (\(key)) is stopping on another replica; retry shortly"))
                    }
                }
            case .success(.rejected(let id)):
                // Someone wrote it who is not a replica (or the replicas' secrets differ): nothing goes there,
                // and the name stays for its owner's next renewal to repair.
                for p in waiting { p.fail(Self.unverified(id, key: key)) }
            case .success(.refused(let error)):
                for p in waiting { p.fail(error) }
            case .failure(let error):
                for p in waiting { p.fail(Self.unreachable(error)) }
            }
            publishGauges()
        }
    }

    /// Removes `key`'s name for this replica's engine `id`, which it does not run, then asks the replicas
    /// again (once).
    private func retry(
        _ key: EngineShareKey, id: String, settings: LaunchSettings, waiting: [EventLoopPromise<EngineAnswer>],
        retries: Int
    ) {
        guard let shared, retries > 0 else {
            for p in waiting { p.fail(Self.unverified(id, key: key)) }
            return
        }
        shared.unmap(key, id: id, on: loop).assumeIsolated().whenComplete { [self] result in
            if case .failure(let error) = result {
                for p in waiting { p.fail(Self.unreachable(error)) }
                return
            }
            for p in waiting { acquireShared(key, settings: settings, bound: nil, promise: p, retries: retries - 1) }
        }
    }

    /// Polls the record of an engine another replica is starting until it is ready, gone, or late.
    package func waitForRemote(
        _ id: String, key: EngineShareKey, settings: LaunchSettings, promises: [EventLoopPromise<EngineAnswer>],
        until deadline: Double
    ) {
        guard let shared else { return }
        loop.scheduleTask(in: .milliseconds(250)) { [self] in
            shared.lookUp(id, on: loop).assumeIsolated().whenComplete { [self] result in
                switch result {
                case .success(.valid(let engine)) where !engine.serves(key, ports: settings.ports):
                    shared.shared.rejected("record")
                    for p in promises { p.fail(Self.unverified(id, key: key)) }
                case .success(.valid(let engine)) where engine.state == .ready:
                    let target = remember(engine)
                    for p in promises { p.succeed(.ready(target)) }
                case .success(.valid(let engine)) where engine.state == .starting && WallClock.now() < deadline:
                    waitForRemote(id, key: key, settings: settings, promises: promises, until: deadline)
                case .success(.rejected):
                    for p in promises { p.fail(Self.unverified(id, key: key)) }
                case .success:
                    for p in promises {
                        p.fail(
                            SparkgateError.unavailable(
                                "engine \(id) (\(key)), launched by another replica, did not become ready; retry"))
                    }
                case .failure(let error):
                    for p in promises { p.fail(Self.unreachable(error)) }
                }
            }
        }
    }

    /// Another replica's engine this replica routes to (its own calls find it in the directory too). Its
    /// token is derived here; on this host (a loopback address) its port is proven with its process before
    /// every new connection, as the launching replica does.
    package func remember(_ engine: SharedEngine) -> EngineTarget {
        let provable = HostPort.isLoopback(engine.host) && engine.pid > 0
        let target = EngineTarget(
            id: engine.id, address: engine.address, token: seal.engineToken(engine.id), pid: provable ? engine.pid : nil
        )
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

    /// Every heartbeat: renews this replica's engines (rewriting any field someone else changed), reports
    /// the sessions it holds on each engine, learns the sessions other replicas hold on its own, and forgets
    /// other replicas' engines whose records are gone.
    package func sharedHeartbeat(now: Double) async {
        guard let shared else { return }
        let (own, remote) =
            (try? await loop.submit { [self] in
                (
                    Array(inner.value.registry.engines.values.filter { $0.state != .stopping }),
                    Array(inner.value.remote.keys)
                )
            }.get()) ?? ([], [])
        let counts = ledger.withLock { $0.sessionsPerEngine() }
        do {
            try await shared.renew(own, now: now, on: loop).get()
            try await shared.reportUse(counts, now: now, on: loop).get()
            let elsewhere = try await shared.useElsewhere(own.map(\.id), now: now, on: loop).get()
            var missing: [String] = []
            for id in remote where try await shared.lookUp(id, on: loop).get() == .missing { missing.append(id) }
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
        .unavailable(
            "shared state (redis) unreachable: \(error); which replica runs this engine cannot be told; retry shortly")
    }

    /// A record in Redis that no replica sealed for this key: nothing is sent on its say-so.
    package static func unverified(_ id: String, key: EngineShareKey) -> SparkgateError {
        .unavailable(
            "the shared state's record of engine \(id) does not verify for \(key) (counted in sparkgate_state_records_rejected_total); nothing was sent to it; retry shortly, and check who writes to Redis"
        )
    }
}
