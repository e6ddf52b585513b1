import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import SparkgateCore
import SparkgateObservability
import SparkgateSharedState
import SparkgateTransport

#if canImport(Glibc)
    import Glibc
#endif

/// What a call gets from a launch pool.
package enum EngineAnswer: Sendable {
    case ready(EngineTarget)
    /// The call's session lived on an engine that is gone.
    case lost(SparkgateError)
}

/// Launches, probes, watches and stops the engines of every launch pool. All of it runs on one event loop,
/// so the registry needs no lock; decisions are `EngineRegistry`'s, this executes them. With shared state,
/// the replicas agree in Redis which engine serves a share key (`EngineManager+Shared`); each engine stays a
/// child of the replica that launched it.
public final class EngineManager: Service, Sendable {
    package let loop: any EventLoop
    package let directory: EngineDirectory
    package let inner: NIOLoopBoundBox<Inner>
    package let ledger: LocalLedger
    package let pool: BackendPool
    package let calls: BackendCalls
    package let metrics: GatewayMetrics
    package let logger: Logger
    package let current: @Sendable () -> SparkgateConfig
    /// The engine records every replica shares (`state.kind: redis`).
    package let shared: SharedEngineRecords?
    /// Derives each engine's token from its id (the replicas' shared secret, or this process's own).
    package let seal: RecordSeal
    /// Where ended engines' directories are removed: a tenant's files must not hold up the event loop that
    /// serves calls.
    package let sweeper = DispatchQueue(label: "sparkgate.engines.sweeper")

    package final class Inner {
        package var registry = EngineRegistry()
        package var waiters: [String: [EventLoopPromise<EngineAnswer>]] = [:]
        package var processes: [String: EngineProcess] = [:]
        /// Each launched engine's workspace (where its directory and log are).
        package var workspaces: [String: EngineWorkspace] = [:]
        /// Each launched engine's cgroup, where the host has cgroup v2.
        package var cgroups: [String: EngineCgroup] = [:]
        /// Each launched engine's OS user, when it runs as one (`launch.run_as`).
        package var credentials: [String: EngineCredentials] = [:]
        /// Launches that failed while their process still ran: the backend whose last-failure log keeps theirs.
        package var failedBackends: [String: String] = [:]
        /// Cgroups of ended engines whose last processes are still dying: removed once empty.
        package var emptying: [EngineCgroup] = []
        package var lastProbe: [String: String] = [:]
        package var backends: Set<String> = []
        /// Share keys whose engine is being agreed on in Redis, with the calls waiting for the answer.
        package var acquiring: [EngineShareKey: [EventLoopPromise<EngineAnswer>]] = [:]
        /// Sessions other replicas hold on this replica's engines, as of the last heartbeat.
        package var usedElsewhere: [String: Int] = [:]
        /// Other replicas' engines this replica routes to.
        package var remote: [String: EngineTarget] = [:]
        /// Set once shutdown begins: nothing launches after it, so no engine outlives the gateway.
        package var shuttingDown = false
    }

    package init(
        loop: any EventLoop, directory: EngineDirectory, ledger: LocalLedger, pool: BackendPool, calls: BackendCalls,
        metrics: GatewayMetrics, logger: Logger,
        shared: SharedEngineRecords? = nil, seal: RecordSeal = .random(),
        config: @escaping @Sendable () -> SparkgateConfig
    ) {
        self.loop = loop
        self.directory = directory
        self.inner = NIOLoopBoundBox.makeBoxSendingValue(Inner(), eventLoop: loop)
        self.ledger = ledger
        self.pool = pool
        self.calls = calls
        self.metrics = metrics
        self.logger = logger
        self.shared = shared
        self.seal = shared?.seal ?? seal
        self.current = config
        shared?.shared.onEngineGone { [weak self] id in
            guard let self else { return }
            loop.execute { self.remoteEngineGone(id) }
        }
    }

    // MARK: Calls

    /// The engine for `key`, launched if needed: completes on `callLoop` once it is ready, or fails with the
    /// refusal the client gets.
    package func target(
        for key: EngineShareKey, settings: LaunchSettings, bound: String?, on callLoop: any EventLoop
    ) -> EventLoopFuture<EngineAnswer> {
        loop.flatSubmit { [self] in
            let promise = loop.makePromise(of: EngineAnswer.self)
            if shared != nil {
                acquireShared(key, settings: settings, bound: bound, promise: promise)
            } else {
                acquire(key, settings: settings, bound: bound, promise: promise)
            }
            return promise.futureResult
        }.hop(to: callLoop)
    }

    /// Decides from this replica's registry alone.
    package func acquire(
        _ key: EngineShareKey, settings: LaunchSettings, bound: String?, promise: EventLoopPromise<EngineAnswer>
    ) {
        let state = inner.value
        let now = WallClock.now()
        let decision = state.registry.acquire(
            key, settings: settings, bound: bound, now: now, make: makeIdentity(key),
            portIsFree: EngineProcess.portIsFree, host: settings.host)
        answer(decision, key: key, settings: settings, promise: promise)
    }

    /// Carries out the registry's decision for a call.
    package func answer(
        _ decision: EngineRegistry.Acquisition, key: EngineShareKey, settings: LaunchSettings,
        promise: EventLoopPromise<EngineAnswer>
    ) {
        let state = inner.value
        switch decision {
        case .ready(let engine):
            promise.succeed(.ready(Self.target(engine)))
        case .wait(let engine):
            state.waiters[engine.id, default: []].append(promise)
        case .launch(let engine):
            state.waiters[engine.id, default: []].append(promise)
            state.backends.insert(key.backend)
            start(engine, settings: settings)
        case .refused(let error):
            promise.fail(error)
        case .sessionLost(let error):
            promise.succeed(.lost(error))
        }
        publishGauges()
    }

    /// A fresh engine id for `key`'s backend, and the token derived from it.
    package func makeIdentity(_ key: EngineShareKey) -> () -> (id: String, token: String) {
        { [seal] in
            var rng = SystemRandomNumberGenerator()
            let id = "\(key.backend)-\(String(rng.next(), radix: 16))"
            return (id, seal.engineToken(id))
        }
    }

    package static func target(_ engine: EngineRegistry.Engine) -> EngineTarget {
        EngineTarget(id: engine.id, address: engine.address, token: engine.token, pid: engine.pid)
    }

    // MARK: Watching

    /// Counts sessions, reaps exited processes, stops idle engines, kills the ones that outlive their grace,
    /// and starts warm engines where they are missing.
    package func tick() {
        let state = inner.value
        let config = current()
        let warmPools = config.backends.values.filter {
            ($0.launch?.warmEngines ?? 0) > 0 || ($0.launch?.warmEnginesPerTeam ?? 0) > 0
        }
        // Most gateways have no launch pool: no reason to take the ledger's lock and walk its sessions.
        guard !state.registry.engines.isEmpty || !state.processes.isEmpty || !warmPools.isEmpty else { return }
        let now = WallClock.now()
        let local = state.registry.engines.isEmpty ? [:] : ledger.withLock { $0.sessionsPerEngine() }
        state.registry.sessionsCounted(local.merging(state.usedElsewhere, uniquingKeysWith: +), now: now)
        // Orphans an engine's tree left to the gateway are reaped with the engines themselves.
        let reaped = ChildReaper.reapAll()
        for (id, process) in state.processes {
            guard let status = reaped[process.pid] ?? process.exited() else { continue }
            state.processes.removeValue(forKey: id)
            exited(id, status: status)
        }
        state.emptying.removeAll { $0.remove() }
        for task in state.registry.due(now: now, settings: { config.backends[$0]?.launch }) {
            switch task {
            case .stop(let engine, let reason):
                terminate(engine, reason: reason, launchResult: "timed_out")
            case .kill(let engine):
                logger.warning("engine outlived its stop grace: killing it", metadata: ["engine": "\(engine.id)"])
                state.processes[engine.id]?.signal(SIGKILL)
                state.cgroups[engine.id]?.killAll()
            }
        }
        for backend in warmPools where !state.shuttingDown {
            guard let settings = backend.launch else { continue }
            state.backends.insert(backend.name)
            let key = EngineShareKey(backend: backend.name, team: nil, user: nil)
            let teams = config.teams.filter { $0.value.backend == backend.name }.map(\.key)
            for engine in state.registry.warmDeficit(
                backend: backend.name, settings: settings, teams: teams, now: now, make: makeIdentity(key),
                portIsFree: EngineProcess.portIsFree,
                host: settings.host)
            {
                startWarm(engine, settings: settings)
            }
        }
        publishGauges()
    }

    package func publishGauges() {
        let engines = inner.value.registry.engines.values
        for backend in inner.value.backends {
            let mine = engines.filter { $0.key.backend == backend }
            metrics.engines(
                backend, starting: mine.filter { $0.state == .starting }.count,
                ready: mine.filter { $0.state == .ready }.count,
                stopping: mine.filter { $0.state == .stopping }.count)
            metrics.warmEngines(backend, count: mine.filter { $0.warm && $0.state == .ready }.count)
        }
    }

    // MARK: Admin

    package func list() -> EventLoopFuture<[EngineRegistry.Engine]> {
        loop.submit { [self] in inner.value.registry.engines.values.sorted { $0.started < $1.started } }
    }

    /// Stops one engine at an operator's request; false when no such engine runs here.
    package func stop(_ id: String) -> EventLoopFuture<Bool> {
        loop.submit { [self] in
            guard let engine = inner.value.registry.engines[id] else { return false }
            let grace = current().backends[engine.key.backend]?.launch?.stopGraceSeconds ?? 10
            guard
                let stopping = inner.value.registry.stop(
                    id, reason: "stopped by an operator", now: WallClock.now(), grace: grace)
            else { return true }
            terminate(stopping, reason: "was stopped by an operator", launchResult: "failed")
            publishGauges()
            return true
        }
    }

    // MARK: Service

    public func run() async throws {
        let task = loop.scheduleRepeatedTask(initialDelay: .milliseconds(250), delay: .milliseconds(250)) { [self] _ in
            tick()
        }
        try? await gracefulShutdown()
        task.cancel()
        await stopAll()
    }

    /// Stops every engine this gateway launched: SIGTERM, then SIGKILL after the grace.
    package func stopAll() async {
        let grace: Double =
            (try? await loop.submit { [self] () -> Double in
                inner.value.shuttingDown = true
                let now = WallClock.now()
                var longest = 0.0
                for engine in inner.value.registry.engines.values {
                    let grace = current().backends[engine.key.backend]?.launch?.stopGraceSeconds ?? 10
                    longest = max(longest, grace)
                    if let stopping = inner.value.registry.stop(
                        engine.id, reason: "the gateway is shutting down", now: now, grace: grace)
                    {
                        terminate(stopping, reason: "was stopped: the gateway is shutting down", launchResult: "failed")
                    }
                }
                return longest
            }.get()) ?? 0
        let deadline = WallClock.now() + grace + 2
        while WallClock.now() < deadline {
            let left =
                (try? await loop.submit { [self] () -> Int in
                    tick()
                    return inner.value.processes.count
                }.get()) ?? 0
            if left == 0 { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        // Whatever ignored SIGTERM and the grace (or started while the first signals went out) dies with its
        // group, its cgroup, or its OS user's other processes; the cgroups go, this gateway's own last.
        try? await loop.submit { [self] in
            for process in inner.value.processes.values { process.signal(SIGKILL) }
            EngineCgroup.removeAll(Array(inner.value.cgroups.values) + inner.value.emptying)
            inner.value.cgroups.removeAll()
            inner.value.emptying.removeAll()
            EngineCgroup.removeParent()
            for credentials in Set(inner.value.credentials.values.map(\.uid)) {
                TenantProcesses.killAll(uid: credentials)
            }
        }.get()
    }
}
