#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import SparkgateCore
import SparkgateTransport
import SparkgateSharedState

/// An engine's process, from launch to exit: its directory and token, the proof that it owns its port, its
/// readiness probes, and what happens when it fails, stops or dies.
extension EngineManager {
    /// Launches a warm engine: with shared state, only once the replicas agree it fits under `max_engines`.
    package func startWarm(_ engine: EngineRegistry.Engine, settings: LaunchSettings) {
        guard let shared else { return start(engine, settings: settings) }
        shared.registerWarm(engine, settings: settings, now: WallClock.now(), on: loop).assumeIsolated().whenComplete { [self] result in
            if case .success(true) = result { return start(engine, settings: settings) }
            // Over max_engines on all replicas, or Redis unreachable: try again at a later tick.
            inner.value.registry.removed(engine.id)
        }
    }

    package func start(_ engine: EngineRegistry.Engine, settings: LaunchSettings) {
        // A warm engine agreed on in Redis, or a call that raced the shutdown: an engine started now would be orphaned.
        guard !inner.value.shuttingDown else {
            return launchFailed(engine.id, result: "failed", reason: "cannot start: the gateway is shutting down", log: nil)
        }
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
                "port": String(engine.port), "host": engine.host, "token": engine.token, "token_file": tokenFile, "team": engine.key.team ?? "", "user": engine.key.user ?? "",
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
    package func probe(_ id: String) {
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
        calls.probe(Self.target(engine), backend: engine.key.backend, limits: current().limits, timeoutSeconds: 2, on: loop)
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
                engine.id, settings: settings, now: WallClock.now(), make: Self.makeIdentity(engine.key), portIsFree: EngineProcess.portIsFree)
        else { return }
        metrics.enginePortConflict(engine.key.backend)
        logger.warning("an engine's port is held by a process Sparkgate did not start: launching on another port", metadata: [
            "engine": "\(ended.id)", "share_key": "\(ended.key)", "port": "\(ended.port)",
        ])
        state.processes[ended.id]?.signal(SIGKILL)
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
        logger.info("engine ready", metadata: ["engine": "\(id)", "share_key": "\(engine.key)", "seconds": "\(Int((now - engine.started) * 1000)) ms"])
        for waiter in inner.value.waiters.removeValue(forKey: id) ?? [] { waiter.succeed(.ready(target)) }
        // Other replicas waiting for it see it ready at once, not at the next heartbeat.
        _ = shared?.renew([engine], now: now, on: loop)
        publishGauges()
    }

    /// A launch that will not become ready: its callers get UNAVAILABLE naming the engine, with the reason
    /// and the end of its log.
    package func launchFailed(_ id: String, result: String, reason: String, log: String?) {
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
        if let engine { _ = shared?.gone(engine, on: loop) }
        logger.error("engine launch failed", metadata: ["engine": "\(id)", "reason": "\(message)"])
        for waiter in inner.value.waiters.removeValue(forKey: id) ?? [] { waiter.fail(SparkgateError.unavailable(message)) }
        // A process still exiting keeps its directory until it is reaped.
        if inner.value.processes[id] == nil { retire(id, backend: engine?.key.backend ?? "", keepLog: true) } else { removeToken(id) }
        publishGauges()
    }

    /// Sends SIGTERM to an engine the registry has just marked stopping: new calls no longer find it, and
    /// calls still waiting for it to start fail with `reason` (counted as a launch with `launchResult`).
    package func terminate(_ engine: EngineRegistry.Engine, reason: String, launchResult: String) {
        directory.remove(engine.id)
        // It serves no new call from now on, on any replica.
        _ = shared?.gone(engine, on: loop)
        let process = inner.value.processes[engine.id]
        process?.signal(SIGTERM)
        if engine.readySince == nil {
            launchFailed(engine.id, result: launchResult, reason: reason, log: process?.log)
        } else {
            logger.info("stopping an engine", metadata: ["engine": "\(engine.id)", "share_key": "\(engine.key)", "reason": "\(reason)"])
        }
    }

    package func exited(_ id: String, status: Int32, log: String) {
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
        _ = shared?.gone(engine, on: loop)
        pool.forget(BackendEndpoint(backend: engine.key.backend, address: engine.address, tls: false))
        // A stopped engine's directory goes; a dead (or never ready) one's log is kept, one per backend.
        retire(id, backend: engine.key.backend, keepLog: engine.state == .ready || engine.readySince == nil)
    }

    package func removeToken(_ id: String) {
        guard let dir = inner.value.directories[id] else { return }
        try? FileManager.default.removeItem(atPath: (dir as NSString).appendingPathComponent("token"))
    }

    /// Removes an engine's directory (its token first), keeping its log as the backend's last failure: a
    /// command that keeps failing, launched again on every retry, must not fill the disk.
    package func retire(_ id: String, backend: String, keepLog: Bool) {
        removeToken(id)
        guard let dir = inner.value.directories.removeValue(forKey: id) else { return }
        if keepLog, let kept = Self.lastFailureLog(directory: dir, backend: backend) {
            try? FileManager.default.removeItem(atPath: kept)
            try? FileManager.default.moveItem(atPath: (dir as NSString).appendingPathComponent("engine.log"), toPath: kept)
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    package static func lastFailureLog(directory: String?, backend: String) -> String? {
        directory.map { (($0 as NSString).deletingLastPathComponent as NSString).appendingPathComponent("\(backend)-last-failure.log") }
    }
}
