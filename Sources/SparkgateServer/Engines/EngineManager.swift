#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import SparkgateCore
import SparkgateObservability

/// What a call gets from a launch pool.
enum EngineAnswer: Sendable {
    case ready(EngineTarget)
    /// The call's session lived on an engine that is gone.
    case lost(SparkgateError)
}

/// Launches, probes, watches and stops the engines of every launch pool. All of it runs on one event loop,
/// so the registry needs no lock; decisions are `EngineRegistry`'s, this executes them.
public final class EngineManager: Service, Sendable {
    let loop: any EventLoop
    let directory: EngineDirectory
    private let inner: NIOLoopBoundBox<Inner>
    private let ledger: LocalLedger
    private let pool: BackendPool
    private let calls: BackendCalls
    private let metrics: GatewayMetrics
    private let logger: Logger
    private let current: @Sendable () -> GatewayState

    private final class Inner {
        var registry = EngineRegistry()
        var waiters: [String: [EventLoopPromise<EngineAnswer>]] = [:]
        var processes: [String: EngineProcess] = [:]
        var directories: [String: String] = [:]
        var lastProbe: [String: String] = [:]
        var backends: Set<String> = []
    }

    init(
        loop: any EventLoop, directory: EngineDirectory, ledger: LocalLedger, pool: BackendPool, calls: BackendCalls, metrics: GatewayMetrics, logger: Logger,
        state: @escaping @Sendable () -> GatewayState
    ) {
        self.loop = loop
        self.directory = directory
        self.inner = NIOLoopBoundBox.makeBoxSendingValue(Inner(), eventLoop: loop)
        self.ledger = ledger
        self.pool = pool
        self.calls = calls
        self.metrics = metrics
        self.logger = logger
        self.current = state
    }

    // MARK: Calls

    /// The engine for `key`, launched if needed: completes on `callLoop` once it is ready, or fails with the
    /// refusal the client gets.
    func target(for key: EngineShareKey, settings: LaunchSettings, bound: String?, on callLoop: any EventLoop) -> EventLoopFuture<EngineAnswer> {
        loop.flatSubmit { [self] in
            let promise = loop.makePromise(of: EngineAnswer.self)
            acquire(key, settings: settings, bound: bound, promise: promise)
            return promise.futureResult
        }.hop(to: callLoop)
    }

    private func acquire(_ key: EngineShareKey, settings: LaunchSettings, bound: String?, promise: EventLoopPromise<EngineAnswer>) {
        let state = inner.value
        let now = WallClock.now()
        let decision = state.registry.acquire(key, settings: settings, bound: bound, now: now, make: Self.makeIdentity(key), portIsFree: EngineProcess.portIsFree)
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

    private static func makeIdentity(_ key: EngineShareKey) -> () -> (id: String, token: String) {
        {
            var rng = SystemRandomNumberGenerator()
            let suffix = String(rng.next() & 0xffff_ffff, radix: 16)
            let token = (0..<4).map { _ in String(rng.next(), radix: 16) }.joined()
            return ("\(key.backend)-\(suffix)", token)
        }
    }

    private static func target(_ engine: EngineRegistry.Engine) -> EngineTarget {
        EngineTarget(id: engine.id, address: engine.address, token: engine.token, pid: engine.pid)
    }

    // MARK: Launching

    private func start(_ engine: EngineRegistry.Engine, settings: LaunchSettings) {
        let base = settings.workDirectory ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("sparkgate-engines-\(getpid())")
        let dir = (base as NSString).appendingPathComponent(engine.id)
        let tokenFile = (dir as NSString).appendingPathComponent("token")
        let log = (dir as NSString).appendingPathComponent("engine.log")
        var credentials: EngineCredentials?
        if let user = settings.runAsUser(for: engine.key) {
            guard let found = EngineCredentials.lookUp(user) else {
                return launchFailed(
                    engine.id, result: "failed",
                    reason: "cannot start: no OS user '\(user)' (launch.run_as '\(settings.runAs ?? "")'); an operator must create it, for example useradd --system --create-home \(user)",
                    log: nil)
            }
            credentials = found
        }
        do {
            // Other users may pass through the base (each engine's own directory is closed to them), never list it.
            try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true, attributes: [.posixPermissions: credentials == nil ? 0o700 : 0o711])
            if credentials != nil { _ = chmod(base, 0o711) }
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            // Only the engine's OS user (and the gateway) can read the token.
            guard FileManager.default.createFile(atPath: tokenFile, contents: Data(engine.token.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw EngineProcess.SpawnError(description: "cannot write \(tokenFile)")
            }
            if let credentials {
                guard chown(dir, credentials.uid, credentials.gid) == 0, chown(tokenFile, credentials.uid, credentials.gid) == 0 else {
                    throw EngineProcess.SpawnError(description: "cannot give \(dir) to user \(credentials.name): \(String(cString: strerror(errno)))")
                }
            }
            inner.value.directories[engine.id] = dir
            let values = [
                "port": String(engine.port), "token": engine.token, "token_file": tokenFile, "team": engine.key.team ?? "", "user": engine.key.user ?? "",
                "engine_id": engine.id, "work_dir": dir,
            ]
            var command = LaunchCommand(settings, values: values, gateway: ProcessInfo.processInfo.environment)
            if let credentials {
                // The engine's own user, not the gateway's (operators may still override them in `environment`).
                for (name, value) in ["HOME": credentials.home, "USER": credentials.name, "LOGNAME": credentials.name] where settings.environment[name] == nil {
                    command.environment[name] = value
                }
            }
            let process = try EngineProcess.spawn(command, directory: dir, log: log, credentials: credentials)
            inner.value.registry.spawned(engine.id, pid: process.pid)
            inner.value.processes[engine.id] = process
            logger.info("launching an engine", metadata: [
                "engine": "\(engine.id)", "share_key": "\(engine.key)", "port": "\(engine.port)", "pid": "\(process.pid)", "log": "\(log)",
            ])
            loop.scheduleTask(in: .milliseconds(300)) { [self] in probe(engine.id) }
        } catch {
            launchFailed(engine.id, result: "failed", reason: "could not start: \(error)", log: nil)
        }
    }

    /// Proves the engine owns its port, then asks it with its token whether it is ready; again every 0.5 s.
    private func probe(_ id: String) {
        guard let engine = inner.value.registry.engines[id], engine.state == .starting else { return }
        if let process = inner.value.processes[id], let status = process.exited() {
            inner.value.processes.removeValue(forKey: id)
            return launchFailed(id, result: "failed", reason: "exited with status \(status) before it became ready", log: process.log)
        }
        // The token goes only to a listener proven to be the engine's.
        switch engine.pid.map({ EnginePortProver.verdict(pid: $0, port: engine.port) }) ?? .noListener {
        case .noListener:
            inner.value.lastProbe[id] = "nothing listens on port \(engine.port) yet"
            loop.scheduleTask(in: .milliseconds(500)) { [self] in probe(id) }
            return
        case .foreign:
            return portTaken(engine)
        case .proven:
            break
        }
        calls.probe(Self.target(engine), backend: engine.key.backend, limits: current().config.limits, timeoutSeconds: 2, on: loop)
            .assumeIsolated().whenComplete { [self] result in
                switch result {
                case .success(let status) where status.code == .ok:
                    ready(id)
                case .success(let status):
                    inner.value.lastProbe[id] = "\(status.code.name): \(status.message)"
                    loop.scheduleTask(in: .milliseconds(500)) { [self] in probe(id) }
                case .failure(let error):
                    inner.value.lastProbe[id] = "\(error)"
                    loop.scheduleTask(in: .milliseconds(500)) { [self] in probe(id) }
                }
            }
    }

    /// Another process listens on the engine's port: this launch ends, and the engine is launched again on
    /// another port for the calls waiting for it.
    private func portTaken(_ engine: EngineRegistry.Engine) {
        let state = inner.value
        guard let settings = current().config.backends[engine.key.backend]?.launch,
            let (ended, next) = state.registry.portTaken(
                engine.id, settings: settings, now: WallClock.now(), make: Self.makeIdentity(engine.key), portIsFree: EngineProcess.portIsFree)
        else { return }
        metrics.enginePortConflict(engine.key.backend)
        logger.warning("an engine's port is held by a process Sparkgate did not start: launching on another port", metadata: [
            "engine": "\(ended.id)", "share_key": "\(ended.key)", "port": "\(ended.port)",
        ])
        state.processes[ended.id]?.signal(SIGKILL)
        removeToken(ended.id)
        let waiting = state.waiters.removeValue(forKey: ended.id) ?? []
        switch next {
        case .launch(let engine):
            state.waiters[engine.id, default: []] += waiting
            start(engine, settings: settings)
        case .wait(let engine):
            state.waiters[engine.id, default: []] += waiting
        case .ready(let engine):
            for waiter in waiting { waiter.succeed(.ready(Self.target(engine))) }
        case .refused(let error), .sessionLost(let error):
            for waiter in waiting { waiter.fail(error) }
        }
        publishGauges()
    }

    private func ready(_ id: String) {
        let now = WallClock.now()
        guard let engine = inner.value.registry.becameReady(id, now: now) else { return }
        let target = Self.target(engine)
        directory.add(target)
        inner.value.lastProbe.removeValue(forKey: id)
        metrics.engineLaunched(engine.key.backend, result: "ready", seconds: now - engine.started)
        logger.info("engine ready", metadata: ["engine": "\(id)", "share_key": "\(engine.key)", "seconds": "\(Int((now - engine.started) * 1000)) ms"])
        for waiter in inner.value.waiters.removeValue(forKey: id) ?? [] { waiter.succeed(.ready(target)) }
        publishGauges()
    }

    /// A launch that will not become ready: its callers get UNAVAILABLE naming the engine, with the reason
    /// and the end of its log.
    private func launchFailed(_ id: String, result: String, reason: String, log: String?) {
        let engine = inner.value.registry.engines[id]
        if let engine, engine.state != .stopping { inner.value.registry.removed(id) }
        let name = engine.map { "engine \(id) (\($0.key))" } ?? "engine \(id)"
        var message = "\(name) \(reason)"
        if let probe = inner.value.lastProbe.removeValue(forKey: id) { message += "; last readiness probe: \(probe)" }
        if let log {
            let tail = EngineProcess.tail(log)
            message += tail.isEmpty ? "; its log is empty" : "; last lines of its log: \(tail)"
        }
        metrics.engineLaunched(engine?.key.backend ?? "", result: result, seconds: nil)
        logger.error("engine launch failed", metadata: ["engine": "\(id)", "reason": "\(message)"])
        for waiter in inner.value.waiters.removeValue(forKey: id) ?? [] { waiter.fail(SparkgateError.unavailable(message)) }
        // A process still exiting keeps its directory until it is reaped.
        if inner.value.processes[id] == nil { retire(id, backend: engine?.key.backend ?? "", keepLog: true) } else { removeToken(id) }
        publishGauges()
    }

    // MARK: Watching

    /// Counts sessions, reaps exited processes, stops idle engines and kills the ones that outlive their grace.
    func tick() {
        let state = inner.value
        // Most gateways have no launch pool: no reason to take the ledger's lock and walk its sessions.
        guard !state.registry.engines.isEmpty || !state.processes.isEmpty else { return }
        let now = WallClock.now()
        state.registry.sessionsCounted(ledger.withLock { $0.sessionsPerEngine() }, now: now)
        for (id, process) in state.processes {
            guard let status = process.exited() else { continue }
            state.processes.removeValue(forKey: id)
            exited(id, status: status, log: process.log)
        }
        let config = current().config
        for task in state.registry.due(now: now, settings: { config.backends[$0]?.launch }) {
            switch task {
            case .stop(let engine, let reason):
                terminate(engine, reason: reason, launchResult: "timed_out")
            case .kill(let engine):
                logger.warning("engine outlived its stop grace: killing it", metadata: ["engine": "\(engine.id)"])
                state.processes[engine.id]?.signal(SIGKILL)
            }
        }
        publishGauges()
    }

    /// Sends SIGTERM to an engine the registry has just marked stopping: new calls no longer find it, and
    /// calls still waiting for it to start fail with `reason` (counted as a launch with `launchResult`).
    private func terminate(_ engine: EngineRegistry.Engine, reason: String, launchResult: String) {
        directory.remove(engine.id)
        let process = inner.value.processes[engine.id]
        process?.signal(SIGTERM)
        if engine.readySince == nil {
            launchFailed(engine.id, result: launchResult, reason: reason, log: process?.log)
        } else {
            logger.info("stopping an engine", metadata: ["engine": "\(engine.id)", "share_key": "\(engine.key)", "reason": "\(reason)"])
        }
    }

    private func exited(_ id: String, status: Int32, log: String) {
        guard let engine = inner.value.registry.engines[id] else {
            // A launch ended by a port conflict: nothing of it is kept.
            return retire(id, backend: "", keepLog: false)
        }
        switch engine.state {
        case .starting:
            return launchFailed(id, result: "failed", reason: "exited with status \(status) before it became ready", log: log)
        case .ready:
            logger.error("engine died", metadata: [
                "engine": "\(id)", "share_key": "\(engine.key)", "status": "\(status)", "log": "\(EngineProcess.tail(log))",
                "kept_log": "\(Self.lastFailureLog(directory: inner.value.directories[id], backend: engine.key.backend) ?? "")",
            ])
        case .stopping:
            logger.info("engine stopped", metadata: ["engine": "\(id)", "status": "\(status)"])
        }
        inner.value.registry.removed(id)
        directory.remove(id)
        pool.forget(BackendEndpoint(backend: engine.key.backend, address: engine.address, tls: false))
        // A stopped engine's directory goes; a dead (or never ready) one's log is kept, one per backend.
        retire(id, backend: engine.key.backend, keepLog: engine.state == .ready || engine.readySince == nil)
    }

    private func removeToken(_ id: String) {
        guard let dir = inner.value.directories[id] else { return }
        try? FileManager.default.removeItem(atPath: (dir as NSString).appendingPathComponent("token"))
    }

    /// Removes an engine's directory (its token first), keeping its log as the backend's last failure: a
    /// command that keeps failing, launched again on every retry, must not fill the disk.
    private func retire(_ id: String, backend: String, keepLog: Bool) {
        removeToken(id)
        guard let dir = inner.value.directories.removeValue(forKey: id) else { return }
        if keepLog, let kept = Self.lastFailureLog(directory: dir, backend: backend) {
            try? FileManager.default.removeItem(atPath: kept)
            try? FileManager.default.moveItem(atPath: (dir as NSString).appendingPathComponent("engine.log"), toPath: kept)
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    private static func lastFailureLog(directory: String?, backend: String) -> String? {
        directory.map { (($0 as NSString).deletingLastPathComponent as NSString).appendingPathComponent("\(backend)-last-failure.log") }
    }

    private func publishGauges() {
        let engines = inner.value.registry.engines.values
        for backend in inner.value.backends {
            let mine = engines.filter { $0.key.backend == backend }
            metrics.engines(
                backend, starting: mine.filter { $0.state == .starting }.count, ready: mine.filter { $0.state == .ready }.count,
                stopping: mine.filter { $0.state == .stopping }.count)
        }
    }

    // MARK: Admin

    func list() -> EventLoopFuture<[EngineRegistry.Engine]> {
        loop.submit { [self] in inner.value.registry.engines.values.sorted { $0.started < $1.started } }
    }

    /// Stops one engine at an operator's request; false when no such engine runs.
    func stop(_ id: String) -> EventLoopFuture<Bool> {
        loop.submit { [self] in
            guard let engine = inner.value.registry.engines[id] else { return false }
            let grace = current().config.backends[engine.key.backend]?.launch?.stopGraceSeconds ?? 10
            guard let stopping = inner.value.registry.stop(id, reason: "stopped by an operator", now: WallClock.now(), grace: grace) else { return true }
            terminate(stopping, reason: "was stopped by an operator", launchResult: "failed")
            publishGauges()
            return true
        }
    }

    // MARK: Service

    public func run() async throws {
        let task = loop.scheduleRepeatedTask(initialDelay: .milliseconds(250), delay: .milliseconds(250)) { [self] _ in tick() }
        try? await gracefulShutdown()
        task.cancel()
        await stopAll()
    }

    /// Stops every engine this gateway launched: SIGTERM, then SIGKILL after the grace.
    func stopAll() async {
        let grace: Double = (try? await loop.submit { [self] () -> Double in
            let now = WallClock.now()
            var longest = 0.0
            for engine in inner.value.registry.engines.values {
                let grace = current().config.backends[engine.key.backend]?.launch?.stopGraceSeconds ?? 10
                longest = max(longest, grace)
                if let stopping = inner.value.registry.stop(engine.id, reason: "the gateway is shutting down", now: now, grace: grace) {
                    terminate(stopping, reason: "was stopped: the gateway is shutting down", launchResult: "failed")
                }
            }
            return longest
        }.get()) ?? 0
        let deadline = WallClock.now() + grace + 2
        while WallClock.now() < deadline {
            let left = (try? await loop.submit { [self] () -> Int in
                tick()
                return inner.value.processes.count
            }.get()) ?? 0
            if left == 0 { return }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
}
