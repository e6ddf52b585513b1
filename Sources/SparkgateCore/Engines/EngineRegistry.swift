/// The engines of every launch pool, as a pure state machine: which engine serves a share key, when one
/// must be launched, refused, stopped or killed. The gateway spawns processes and probes them; this decides.
/// Time comes in as a parameter.
public struct EngineRegistry: Sendable {
    public enum State: String, Sendable {
        case starting, ready, stopping
    }

    public struct Engine: Sendable, Equatable {
        public let id: String
        /// Who it serves; a warm engine has the backend's key until a tenant takes it.
        public fileprivate(set) var key: EngineShareKey
        /// Started ahead with no tenant (`launch.warm_engines`), or for a team with no user yet
        /// (`launch.warm_engines_per_team`: its key names the team).
        public fileprivate(set) var warm = false
        /// A warm engine offered to one call while the shared state decides: no other call is offered it.
        public fileprivate(set) var reserved = false
        /// The OS user it runs as (`launch.run_as`), nil for the gateway's own.
        public var osUser: String?
        public let port: Int
        /// Where other replicas reach it (`launch.advertise_host`); loopback otherwise.
        public var host = "127.0.0.1"
        /// The backend token only this engine accepts.
        public let token: String
        public fileprivate(set) var state = State.starting
        public fileprivate(set) var pid: Int32?
        public let started: Double
        public fileprivate(set) var readySince: Double?
        /// Sessions bound to the engine, as the ledger last counted them.
        public fileprivate(set) var sessions = 0
        /// Since when the engine has had no session (or when it was last handed to a call).
        public fileprivate(set) var idleSince: Double
        /// When SIGKILL follows the SIGTERM of a stopping engine.
        public fileprivate(set) var killAt: Double?
        public fileprivate(set) var stopReason: String?

        /// Where this replica reaches it: it runs here, on loopback or on the advertised address.
        public var address: HostPort { HostPort(host: host == "0.0.0.0" ? "127.0.0.1" : host, port: port) }

        /// Idle seconds at `now`: zero while any session is bound (and for warm engines, which wait on purpose).
        public func idleSeconds(now: Double) -> Double {
            sessions > 0 || state != .ready || warm ? 0 : max(0, now - idleSince)
        }
    }

    /// What a call needs done to reach its engine.
    public enum Acquisition: Sendable, Equatable {
        /// Route the call to this ready engine.
        case ready(Engine)
        /// The engine is starting: wait for it to become ready or fail.
        case wait(Engine)
        /// A new engine was registered as starting: spawn it, then wait like `wait`.
        case launch(Engine)
        case refused(SparkgateError)
        /// The session lived on an engine that is gone: its state (temp views, cached data) went with it.
        case sessionLost(SparkgateError)
    }

    /// Work the gateway must do now.
    public enum Task: Sendable, Equatable {
        /// SIGTERM the engine: it was idle, or never became ready in time.
        case stop(Engine, reason: String)
        /// SIGKILL the engine: it outlived its stop grace.
        case kill(Engine)
    }

    public private(set) var engines: [String: Engine] = [:]
    private var current: [EngineShareKey: String] = [:]
    private var portCursor: [String: Int] = [:]

    public init() {}

    /// The engine that serves `key` (or why none can); `bound` is the engine the call's session lives on,
    /// if it was bound to one. `make` gives a fresh engine id and token; `portIsFree` says whether nothing
    /// else listens on a port.
    public mutating func acquire(
        _ key: EngineShareKey, settings: LaunchSettings, bound: String?, now: Double,
        make: () -> (id: String, token: String), portIsFree: (Int) -> Bool,
        host: String = "127.0.0.1"
    ) -> Acquisition {
        let live = current[key].flatMap { engines[$0] }
        if let bound, bound != live?.id {
            return .sessionLost(
                Self.sessionLost(
                    bound: bound, key: key,
                    what: engines[bound].map { "is stopping (\($0.stopReason ?? "stopped"))" } ?? "has stopped"))
        }
        if var engine = live {
            if engine.state == .ready {
                engine.idleSince = max(engine.idleSince, now)
                engines[engine.id] = engine
                return .ready(engine)
            }
            return .wait(engine)
        }
        if let warm = readyWarmEngine(for: key) {
            if teamEngines(key) >= settings.teamLimit {
                return .refused(Self.teamLimitRefusal(key, settings: settings))
            }
            return .ready(adopt(warm.id, for: key, now: now)!)
        }
        let pool = engines.values.filter { $0.key.backend == key.backend }
        if pool.count >= settings.maxEngines { return .refused(Self.maxEnginesRefusal(key, settings: settings)) }
        if teamEngines(key) >= settings.teamLimit { return .refused(Self.teamLimitRefusal(key, settings: settings)) }
        if let refusal = identityRefusal(key, settings: settings) { return .refused(refusal) }
        guard let port = freePort(backend: key.backend, settings: settings, portIsFree: portIsFree) else {
            return .refused(
                .resourceExhausted(
                    "backend '\(key.backend)': no free port in ports \(settings.ports.lowerBound)-\(settings.ports.upperBound) for a new engine"
                ))
        }
        let made = make()
        var engine = Engine(id: made.id, key: key, port: port, token: made.token, started: now, idleSince: now)
        engine.host = host
        engine.osUser = settings.runAsUser(for: key)
        engines[engine.id] = engine
        current[key] = engine.id
        return .launch(engine)
    }

    /// The engines serving `key`'s team on its backend (warm engines started for the team serve no one yet).
    private func teamEngines(_ key: EngineShareKey) -> Int {
        guard let team = key.team else { return 0 }
        return engines.values.filter { !$0.warm && $0.key.backend == key.backend && $0.key.team == team }.count
    }

    // MARK: Warm engines

    /// A warm engine of `key`'s backend that `key` may take, if one is ready and not offered to another call:
    /// one started for its team (as the team's OS user) first, else one started for any tenant.
    public func readyWarmEngine(for key: EngineShareKey) -> Engine? {
        let ready = engines.values.filter {
            $0.warm && !$0.reserved && $0.state == .ready && $0.key.backend == key.backend
        }
        let own = ready.filter { $0.key.team != nil && $0.key.team == key.team }
        return (own.isEmpty ? ready.filter { $0.key.team == nil } : own).min { $0.id < $1.id }
    }

    /// Offers the warm engine `id` to one call while the shared state decides; nil when it is no longer a
    /// ready, unoffered warm engine.
    public mutating func reserve(_ id: String) -> Engine? {
        guard var engine = engines[id], engine.warm, !engine.reserved, engine.state == .ready else { return nil }
        engine.reserved = true
        engines[id] = engine
        return engine
    }

    /// The shared state gave the call another engine: the warm engine may be offered again.
    public mutating func unreserve(_ id: String) {
        engines[id]?.reserved = false
    }

    /// Gives the warm engine `id` to `key`: it serves the key from now on (its token is its own already, so
    /// nothing restarts). Nil when it is not a ready warm engine that `key` may take.
    @discardableResult
    public mutating func adopt(_ id: String, for key: EngineShareKey, now: Double) -> Engine? {
        guard let engine = engines[id], engine.warm, engine.state == .ready, engine.key.backend == key.backend,
            engine.key.team == nil || engine.key.team == key.team
        else { return nil }
        let adopted = Self.adopted(engine, for: key, now: now)
        engines[id] = adopted
        current[key] = id
        return adopted
    }

    /// `warm` as it is once `key` takes it.
    public static func adopted(_ warm: Engine, for key: EngineShareKey, now: Double) -> Engine {
        var engine = warm
        engine.warm = false
        engine.reserved = false
        engine.key = key
        engine.idleSince = now
        return engine
    }

    /// Warm engines to launch now so that `warm_engines` of each backend stand ready for any tenant, and
    /// `warm_engines_per_team` for each of `teams` (starting ones count), within `max_engines`; each is
    /// registered as starting.
    public mutating func warmDeficit(
        backend: String, settings: LaunchSettings, teams: [String] = [], now: Double,
        make: () -> (id: String, token: String), portIsFree: (Int) -> Bool,
        host: String = "127.0.0.1"
    ) -> [Engine] {
        var wanted: [(team: String?, missing: Int)] = []
        let warm = engines.values.filter { $0.key.backend == backend && $0.warm }
        if settings.warmEngines > 0 {
            wanted.append((nil, settings.warmEngines - warm.filter { $0.key.team == nil }.count))
        }
        if settings.warmEnginesPerTeam > 0 {
            for team in teams.sorted() {
                wanted.append((team, settings.warmEnginesPerTeam - warm.filter { $0.key.team == team }.count))
            }
        }
        var room = settings.maxEngines - engines.values.filter { $0.key.backend == backend }.count
        var launched: [Engine] = []
        for (team, missing) in wanted {
            var missing = missing
            while missing > 0, room > 0,
                let port = freePort(backend: backend, settings: settings, portIsFree: portIsFree)
            {
                let made = make()
                let key = EngineShareKey(backend: backend, team: team, user: nil)
                var engine = Engine(id: made.id, key: key, port: port, token: made.token, started: now, idleSince: now)
                engine.warm = true
                engine.host = host
                engine.osUser = settings.runAsUser(for: key)
                engines[engine.id] = engine
                launched.append(engine)
                missing -= 1
                room -= 1
            }
        }
        return launched
    }

    /// Why `key` gets no engine of its own OS user: its names do not fit `run_as` (`LaunchSettings
    /// .runAsRefusal`), or another tenant's engine runs as the user it maps to. Nil when it may launch.
    public func identityRefusal(_ key: EngineShareKey, settings: LaunchSettings) -> SparkgateError? {
        if let reason = settings.runAsRefusal(for: key) { return SparkgateError(.failedPrecondition, reason) }
        guard !settings.allowSharedRunAs, let user = settings.runAsUser(for: key),
            let other = sharesOSUser(user, with: key)
        else { return nil }
        return SparkgateError(
            .failedPrecondition,
            "backend '\(key.backend)': run_as '\(settings.runAs ?? "")' gives \(key) the OS user '\(user)', which engine \(other.id) (\(other.key)) already runs as; no engine starts as another tenant's user. An operator must make run_as tell tenants apart"
        )
    }

    /// An engine of another tenant (starting, ready, stopping or warm for another team) that runs as
    /// `osUser`: `key`'s engine must not run as that user too (it could read that engine's token,
    /// environment and files, and signal its processes).
    public func sharesOSUser(_ osUser: String, with key: EngineShareKey) -> Engine? {
        engines.values.first { $0.osUser == osUser && ($0.key.team != key.team || $0.key.user != key.user) }
    }

    // MARK: Engines shared by several replicas

    /// An engine this replica would launch for `key` (its id, port and token), not yet registered: with shared
    /// state, the replicas decide in Redis whether it is launched (`register`) or another engine serves.
    public mutating func propose(
        _ key: EngineShareKey, settings: LaunchSettings, host: String, now: Double,
        make: () -> (id: String, token: String), portIsFree: (Int) -> Bool
    ) -> Engine? {
        guard let port = freePort(backend: key.backend, settings: settings, portIsFree: portIsFree) else { return nil }
        let made = make()
        var engine = Engine(id: made.id, key: key, port: port, token: made.token, started: now, idleSince: now)
        engine.host = host
        engine.osUser = settings.runAsUser(for: key)
        return engine
    }

    /// `engine` as it is once ready, for records that report it.
    public static func readyCopy(_ engine: Engine) -> Engine {
        var copy = engine
        copy.state = .ready
        return copy
    }

    /// Registers an engine the shared state decided this replica launches: it serves its key from now on.
    public mutating func register(_ engine: Engine) {
        engines[engine.id] = engine
        if !engine.warm { current[engine.key] = engine.id }
    }

    /// The engine's port turned out to be held by a process Sparkgate did not start: that launch ends (the
    /// caller kills its process, which leaves the registry at once) and a new engine for the same key is
    /// launched on another port, for the same waiting calls. Nil when the engine is not starting.
    public mutating func portTaken(
        _ id: String, settings: LaunchSettings, now: Double, make: () -> (id: String, token: String),
        portIsFree: (Int) -> Bool
    ) -> (ended: Engine, next: Acquisition)? {
        guard let engine = engines[id], engine.state == .starting else { return nil }
        engines.removeValue(forKey: id)
        if current[engine.key] == id { current.removeValue(forKey: engine.key) }
        return (
            engine,
            acquire(
                engine.key, settings: settings, bound: nil, now: now, make: make, portIsFree: portIsFree,
                host: engine.host)
        )
    }

    /// The engine's process started.
    public mutating func spawned(_ id: String, pid: Int32) {
        engines[id]?.pid = pid
    }

    /// The engine answered its readiness probe; nil when it is no longer starting.
    public mutating func becameReady(_ id: String, now: Double) -> Engine? {
        guard var engine = engines[id], engine.state == .starting else { return nil }
        engine.state = .ready
        engine.readySince = now
        engine.idleSince = now
        engines[id] = engine
        return engine
    }

    /// The engine could not start, or its process ended: it leaves the registry.
    @discardableResult
    public mutating func removed(_ id: String) -> Engine? {
        guard let engine = engines.removeValue(forKey: id) else { return nil }
        if current[engine.key] == id { current.removeValue(forKey: engine.key) }
        return engine
    }

    /// Starts stopping an engine (idle, timed out, or an operator's request): new calls for its key get a
    /// new engine, its sessions are lost. Nil when it is unknown or stopping already.
    public mutating func stop(_ id: String, reason: String, now: Double, grace: Double) -> Engine? {
        guard var engine = engines[id], engine.state != .stopping else { return nil }
        engine.state = .stopping
        engine.stopReason = reason
        engine.killAt = now + grace
        engines[id] = engine
        if current[engine.key] == id { current.removeValue(forKey: engine.key) }
        return engine
    }

    /// The ledger's count of sessions per engine (engines absent have none).
    public mutating func sessionsCounted(_ counts: [String: Int], now: Double) {
        for (id, var engine) in engines {
            let n = counts[id, default: 0]
            if n == engine.sessions { continue }
            if n == 0 { engine.idleSince = max(engine.idleSince, now) }
            engine.sessions = n
            engines[id] = engine
        }
    }

    /// What is due at `now`: idle engines and engines that never became ready are stopped, stopping engines
    /// past their grace are killed. Stopping is recorded here; the caller signals the processes.
    public mutating func due(now: Double, settings: (String) -> LaunchSettings?) -> [Task] {
        var tasks: [Task] = []
        for engine in engines.values.sorted(by: { $0.id < $1.id }) {
            guard let s = settings(engine.key.backend) else {
                if let e = stop(engine.id, reason: "its backend is no longer configured", now: now, grace: 0) {
                    tasks.append(.stop(e, reason: e.stopReason!))
                }
                continue
            }
            switch engine.state {
            case .starting where now - engine.started >= s.startupTimeoutSeconds:
                let reason =
                    "did not become ready within startup_timeout_seconds (\(Self.format(s.startupTimeoutSeconds)))"
                if let e = stop(engine.id, reason: reason, now: now, grace: s.stopGraceSeconds) {
                    tasks.append(.stop(e, reason: reason))
                }
            case .ready where !engine.warm && engine.sessions == 0 && now - engine.idleSince >= s.idleSeconds:
                let reason = "idle for \(Self.format(s.idleSeconds)) s"
                if let e = stop(engine.id, reason: reason, now: now, grace: s.stopGraceSeconds) {
                    tasks.append(.stop(e, reason: reason))
                }
            case .stopping:
                if let killAt = engine.killAt, now >= killAt {
                    engines[engine.id]?.killAt = nil
                    tasks.append(.kill(engine))
                }
            default:
                break
            }
        }
        return tasks
    }

    /// The engine serving `key` now, if any.
    public func engine(for key: EngineShareKey) -> Engine? {
        current[key].flatMap { engines[$0] }
    }

    private mutating func freePort(backend: String, settings: LaunchSettings, portIsFree: (Int) -> Bool) -> Int? {
        let used = Set(engines.values.map(\.port))
        let range = settings.ports
        let count = range.count
        // Ports rotate, so an engine that just stopped is not replaced at once on the same port.
        let start = portCursor[backend].map { range.contains($0) ? $0 : range.lowerBound } ?? range.lowerBound
        for step in 0..<count {
            let port = range.lowerBound + (start - range.lowerBound + step) % count
            if used.contains(port) || !portIsFree(port) { continue }
            portCursor[backend] = port == range.upperBound ? range.lowerBound : port + 1
            return port
        }
        return nil
    }

    /// What a session's calls get once the engine that held its state is gone.
    public static func sessionLost(bound: String, key: EngineShareKey, what: String) -> SparkgateError {
        SparkgateError(
            .failedPrecondition,
            "this session lived on engine \(bound) (\(key)), which \(what): its temporary views and cached data are gone; start a new session (spark.stop(), then a new SparkSession)"
        )
    }

    public static func maxEnginesRefusal(_ key: EngineShareKey, settings: LaunchSettings) -> SparkgateError {
        .resourceExhausted(
            "backend '\(key.backend)' runs max_engines (\(settings.maxEngines)) engines already; no engine for \(key) until one goes idle (idle_seconds: \(Self.format(settings.idleSeconds))) or an operator stops one",
            retryAfter: .seconds(5))
    }

    public static func teamLimitRefusal(_ key: EngineShareKey, settings: LaunchSettings) -> SparkgateError {
        .resourceExhausted(
            "team '\(key.team ?? "")' runs max_engines_per_team (\(settings.teamLimit)) engines on backend '\(key.backend)' already; no engine for \(key) until one goes idle",
            retryAfter: .seconds(5))
    }

    static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }
}
