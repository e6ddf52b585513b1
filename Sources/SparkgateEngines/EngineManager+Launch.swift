import Foundation
import NIOCore
import SparkgateCore
import SparkgateSharedState
import SparkgateTransport

#if canImport(Glibc)
    import Glibc
#endif

/// An engine's process, from launch to exit: its directory and token, the proof that it owns its port, its
/// readiness probes, and what happens when it fails, stops or dies (all of it, whatever it started).
extension EngineManager {
    /// Launches a warm engine: with shared state, only once the replicas agree it fits under `max_engines`.
    package func startWarm(_ engine: EngineRegistry.Engine, settings: LaunchSettings) {
        guard let shared else { return start(engine, settings: settings) }
        shared.registerWarm(engine, settings: settings, now: WallClock.now(), on: loop).assumeIsolated().whenComplete {
            [self] result in
            if case .success(true) = result { return start(engine, settings: settings) }
            // Over max_engines on all replicas, or Redis unreachable: try again at a later tick.
            inner.value.registry.removed(engine.id)
        }
    }

    package func start(_ engine: EngineRegistry.Engine, settings: LaunchSettings) {
        // A warm engine agreed on in Redis, or a call that raced the shutdown: an engine started now would be orphaned.
        guard !inner.value.shuttingDown else {
            return launchFailed(engine.id, result: "failed", reason: "cannot start: the gateway is shutting down")
        }
        let workspace: EngineWorkspace
        do {
            workspace = try EngineWorkspace.prepare(settings.workDirectory)
        } catch {
            return launchFailed(engine.id, result: "failed", reason: "cannot start: \(error.description)")
        }
        var credentials: EngineCredentials?
        if let user = engine.osUser {
            guard let found = EngineCredentials.lookUp(user) else {
                return launchFailed(
                    engine.id, result: "failed",
                    reason:
                        "cannot start: no OS user '\(user)' (launch.run_as '\(settings.runAs ?? "")'); an operator must create it, for example useradd --system --create-home \(user)"
                )
            }
            // root reads every tenant's files; the gateway's own user reads the gateway's secrets.
            guard found.uid != 0, found.uid != geteuid() else {
                return launchFailed(
                    engine.id, result: "failed",
                    reason:
                        "cannot start: OS user '\(user)' (launch.run_as '\(settings.runAs ?? "")') has uid \(found.uid), \(found.uid == 0 ? "root's" : "the gateway's own"); engines never run as it"
                )
            }
            credentials = found
        }
        let dir = workspace.directory(engine.id)
        do {
            try workspace.createDirectory(engine.id, token: engine.token, owner: credentials)
        } catch {
            return launchFailed(engine.id, result: "failed", reason: "could not start: \(error.description)")
        }
        inner.value.workspaces[engine.id] = workspace
        if let credentials { inner.value.credentials[engine.id] = credentials }
        let values = [
            "port": String(engine.port), "host": engine.host, "token": engine.token,
            "token_file": (dir as NSString).appendingPathComponent("token"),
            "team": engine.key.team ?? "", "user": engine.key.user ?? "", "engine_id": engine.id, "work_dir": dir,
        ]
        var command = LaunchCommand(settings, values: values, gateway: ProcessInfo.processInfo.environment)
        if let credentials {
            // The engine's own user, not the gateway's (operators may still override them in `environment`).
            for (name, value) in ["HOME": credentials.home, "USER": credentials.name, "LOGNAME": credentials.name]
            where settings.environment[name] == nil {
                command.environment[name] = value
            }
        }
        let cgroup = EngineCgroup.make(engine.id)
        if let cgroup { inner.value.cgroups[engine.id] = cgroup }
        do {
            let logFD = try workspace.openLog(engine.id)
            defer { close(logFD) }
            let process = try EngineProcess.spawn(
                command, directory: dir, log: (logFD, workspace.log(engine.id)), credentials: credentials,
                cgroup: cgroup)
            inner.value.registry.spawned(engine.id, pid: process.pid)
            inner.value.processes[engine.id] = process
            logger.info(
                "launching an engine",
                metadata: [
                    "engine": "\(engine.id)", "share_key": "\(engine.key)", "port": "\(engine.port)",
                    "pid": "\(process.pid)", "log": "\(process.log)",
                    "os_user": "\(credentials?.name ?? "-")", "cgroup": "\(cgroup?.path ?? "-")",
                ])
            loop.scheduleTask(in: .milliseconds(300)) { [self] in probe(engine.id) }
        } catch {
            launchFailed(engine.id, result: "failed", reason: "could not start: \(error)")
        }
    }

    /// Proves the engine owns its port, then asks it with its token whether it is ready; again every 0.5 s.
    package func probe(_ id: String) {
        guard let engine = inner.value.registry.engines[id], engine.state == .starting else { return }
        if let process = inner.value.processes[id], let status = ChildReaper.reapAll()[process.pid] ?? process.exited()
        {
            inner.value.processes.removeValue(forKey: id)
            return exited(id, status: status)
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
        calls.probe(
            Self.target(engine), backend: engine.key.backend, limits: current().limits, timeoutSeconds: 2, on: loop
        )
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
    package func portTaken(_ engine: EngineRegistry.Engine) {
        let state = inner.value
        guard let settings = current().backends[engine.key.backend]?.launch,
            let (ended, next) = state.registry.portTaken(
                engine.id, settings: settings, now: WallClock.now(), make: makeIdentity(engine.key),
                portIsFree: EngineProcess.portIsFree)
        else { return }
        metrics.enginePortConflict(engine.key.backend)
        logger.warning(
            "an engine's port is held by a process Sparkgate did not start: launching on another port",
            metadata: [
                "engine": "\(ended.id)", "share_key": "\(ended.key)", "port": "\(ended.port)",
            ])
        state.processes[ended.id]?.signal(SIGKILL)
        state.cgroups[ended.id]?.killAll()
        removeToken(ended.id)
        _ = shared?.gone(ended, on: loop)
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

    package func ready(_ id: String) {
        let now = WallClock.now()
        guard let engine = inner.value.registry.becameReady(id, now: now) else { return }
        let target = Self.target(engine)
        directory.add(target)
        inner.value.lastProbe.removeValue(forKey: id)
        metrics.engineLaunched(engine.key.backend, result: "ready", seconds: now - engine.started)
        logger.info(
            "engine ready",
            metadata: [
                "engine": "\(id)", "share_key": "\(engine.key)", "seconds": "\(Int((now - engine.started) * 1000)) ms",
            ])
        for waiter in inner.value.waiters.removeValue(forKey: id) ?? [] { waiter.succeed(.ready(target)) }
        // Other replicas waiting for it see it ready at once, not at the next heartbeat.
        _ = shared?.renew([engine], now: now, on: loop)
        publishGauges()
    }

    /// A launch that will not become ready: its callers get UNAVAILABLE naming the engine, the reason and
    /// where the operator finds its log; the log's last lines (redacted) only with `log_tail_in_errors`.
    package func launchFailed(_ id: String, result: String, reason: String) {
        let engine = inner.value.registry.engines[id]
        if let engine, engine.state != .stopping { inner.value.registry.removed(id) }
        let name = engine.map { "engine \(id) (\($0.key))" } ?? "engine \(id)"
        var message = "\(name) \(reason)"
        if let probe = inner.value.lastProbe.removeValue(forKey: id) { message += "; last readiness probe: \(probe)" }
        if let engine, let workspace = inner.value.workspaces[id] {
            message += "; its log is kept at \(workspace.lastFailureLog(engine.key.backend))"
            if current().backends[engine.key.backend]?.launch?.logTailInErrors == true {
                let tail = LogRedaction.redact(workspace.tail("\(id).log"), secrets: [engine.token])
                message += tail.isEmpty ? " (empty)" : "; its last lines: \(tail)"
            }
        }
        metrics.engineLaunched(engine?.key.backend ?? "", result: result, seconds: nil)
        if let engine { _ = shared?.gone(engine, on: loop) }
        logger.error("engine launch failed", metadata: ["engine": "\(id)", "reason": "\(message)"])
        for waiter in inner.value.waiters.removeValue(forKey: id) ?? [] {
            waiter.fail(SparkgateError.unavailable(message))
        }
        // A process still exiting keeps its directory until it is reaped; its log is kept then.
        if inner.value.processes[id] == nil {
            ended(id, backend: engine?.key.backend ?? "", keepLog: true)
        } else {
            removeToken(id)
            if let engine { inner.value.failedBackends[id] = engine.key.backend }
        }
        publishGauges()
    }

    /// Sends SIGTERM to an engine the registry has just marked stopping: new calls no longer find it, and
    /// calls still waiting for it to start fail with `reason` (counted as a launch with `launchResult`).
    package func terminate(_ engine: EngineRegistry.Engine, reason: String, launchResult: String) {
        directory.remove(engine.id)
        // It serves no new call from now on, on any replica.
        _ = shared?.gone(engine, on: loop)
        inner.value.processes[engine.id]?.signal(SIGTERM)
        if engine.readySince == nil {
            launchFailed(engine.id, result: launchResult, reason: reason)
        } else {
            logger.info(
                "stopping an engine",
                metadata: ["engine": "\(engine.id)", "share_key": "\(engine.key)", "reason": "\(reason)"])
        }
    }

    /// The engine's process ended: everything it started goes with it, and so does the engine.
    package func exited(_ id: String, status: Int32) {
        guard let engine = inner.value.registry.engines[id] else {
            // A launch that failed while its process still ran keeps its log; one ended by a port conflict
            // keeps nothing.
            let failedOn = inner.value.failedBackends.removeValue(forKey: id)
            return ended(id, backend: failedOn ?? "", keepLog: failedOn != nil)
        }
        switch engine.state {
        case .starting:
            return launchFailed(id, result: "failed", reason: "exited with status \(status) before it became ready")
        case .ready:
            logger.error(
                "engine died",
                metadata: [
                    "engine": "\(id)", "share_key": "\(engine.key)", "status": "\(status)",
                    "kept_log": "\(inner.value.workspaces[id]?.lastFailureLog(engine.key.backend) ?? "")",
                ])
        case .stopping:
            logger.info("engine stopped", metadata: ["engine": "\(id)", "status": "\(status)"])
        }
        inner.value.registry.removed(id)
        directory.remove(id)
        _ = shared?.gone(engine, on: loop)
        pool.forget(BackendEndpoint(backend: engine.key.backend, address: engine.address, tls: false))
        // A stopped engine's directory goes; a dead (or never ready) one's log is kept, one per backend.
        ended(id, backend: engine.key.backend, keepLog: engine.state == .ready || engine.readySince == nil)
    }

    package func removeToken(_ id: String) {
        inner.value.workspaces[id]?.removeToken(id)
    }

    /// What an engine leaves when it ends: every process it started (its cgroup killed, or, without cgroups,
    /// every process of its OS user once no other engine runs as that user), then its directory; its log
    /// is kept as the backend's last failure or removed.
    package func ended(_ id: String, backend: String, keepLog: Bool) {
        let state = inner.value
        let cgroup = state.cgroups.removeValue(forKey: id)
        let credentials = state.credentials.removeValue(forKey: id)
        let workspace = state.workspaces.removeValue(forKey: id)
        if let cgroup {
            cgroup.killAll()
            if !cgroup.remove() { state.emptying.append(cgroup) }
        }
        // Without cgroups, the OS user's processes are swept here, before the loop can start another engine
        // as that user (a sweep running beside its launch would kill it).
        if cgroup == nil, let credentials, !state.credentials.values.contains(where: { $0.uid == credentials.uid }) {
            let killed = TenantProcesses.killAll(uid: credentials.uid)
            if killed > 0 {
                logger.notice(
                    "killed what an engine's OS user left running",
                    metadata: ["engine": "\(id)", "os_user": "\(credentials.name)", "processes": "\(killed)"])
            }
        }
        // A tenant's directory can be large (Spark's local files): removed away from the loop.
        sweeper.async { workspace?.retire(id, backend: backend, keepLog: keepLog) }
    }
}
