import SparkgateCore
import Testing

@Suite("Engine registry: launches, limits, readiness, lost sessions, idle stops")
struct EngineRegistryTests {
    static let alice = EngineShareKey(backend: "pool", team: "analytics", user: "alice")
    static let bob = EngineShareKey(backend: "pool", team: "analytics", user: "bob")
    static let carol = EngineShareKey(backend: "pool", team: "data-eng", user: "carol")

    var registry = EngineRegistry()
    var settings: LaunchSettings = {
        var s = LaunchSettings(command: ["engine", "{port}"])
        s.share = .user
        s.ports = 100...103
        s.maxEngines = 3
        s.maxEnginesPerTeam = 2
        s.idleSeconds = 60
        s.startupTimeoutSeconds = 30
        s.stopGraceSeconds = 5
        return s
    }()
    var made = 0

    mutating func acquire(
        _ key: EngineShareKey, bound: String? = nil, now: Double = 0, busy: Set<Int> = []
    ) -> EngineRegistry.Acquisition {
        var n = made
        defer { made = n }
        return registry.acquire(
            key, settings: settings, bound: bound, now: now,
            make: {
                n += 1
                return ("e\(n)", "token-\(n)")
            }, portIsFree: { !busy.contains($0) })
    }

    mutating func due(_ now: Double) -> [EngineRegistry.Task] {
        let s = settings
        return registry.due(now: now, settings: { _ in s })
    }

    func engine(_ a: EngineRegistry.Acquisition) -> EngineRegistry.Engine? {
        switch a {
        case .launch(let e), .wait(let e), .ready(let e): e
        default: nil
        }
    }

    @Test(
        "the first call launches; calls while it starts wait for the same engine; once ready, calls go straight to it")
    mutating func oneLaunchPerKey() {
        guard case .launch(let e) = acquire(Self.alice) else {
            Issue.record("no launch")
            return
        }
        #expect(e.id == "e1" && e.token == "token-1" && e.port == 100 && e.state == .starting)
        #expect(acquire(Self.alice, now: 1) == .wait(e))
        registry.spawned("e1", pid: 42)
        #expect(registry.becameReady("e1", now: 2)?.state == .ready)
        #expect(registry.becameReady("e1", now: 3) == nil)
        guard case .ready(let r) = acquire(Self.alice, now: 4) else {
            Issue.record("not ready")
            return
        }
        #expect(r.id == "e1" && r.pid == 42 && r.address == HostPort(host: "127.0.0.1", port: 100))
        #expect(made == 1)
    }

    @Test("max_engines and max_engines_per_team refuse with RESOURCE_EXHAUSTED naming the limit")
    mutating func limits() {
        _ = acquire(Self.alice)
        _ = acquire(Self.bob)
        guard case .refused(let team) = acquire(EngineShareKey(backend: "pool", team: "analytics", user: "dan")) else {
            Issue.record("not refused")
            return
        }
        #expect(
            team.code == .resourceExhausted && team.message.contains("max_engines_per_team (2)")
                && team.message.contains("user:analytics/dan"))
        _ = acquire(Self.carol)
        guard case .refused(let all) = acquire(EngineShareKey(backend: "pool", team: "ops", user: "eve")) else {
            Issue.record("not refused")
            return
        }
        #expect(all.code == .resourceExhausted && all.message.contains("max_engines (3)"))
        // Another pool has limits of its own.
        guard case .launch = acquire(EngineShareKey(backend: "other", team: "ops", user: "eve")) else {
            Issue.record("other pool refused")
            return
        }
    }

    @Test("ports rotate through the range, skipping ports in use by engines or by anything else")
    mutating func ports() {
        settings.maxEngines = 10
        settings.maxEnginesPerTeam = nil
        #expect(engine(acquire(Self.alice, busy: [100]))?.port == 101)
        #expect(engine(acquire(Self.bob))?.port == 102)
        _ = registry.stop("e1", reason: "test", now: 1, grace: 0)
        registry.removed("e1")
        // Port 101 is free again, but the cursor moves on: a relaunch does not land where the last engine was.
        #expect(engine(acquire(Self.alice))?.port == 103)
        #expect(engine(acquire(Self.carol))?.port == 100)
        #expect(engine(acquire(EngineShareKey(backend: "pool", team: "x", user: "y")))?.port == 101)
        guard case .refused(let full) = acquire(EngineShareKey(backend: "pool", team: "x", user: "z")) else {
            Issue.record("range full")
            return
        }
        #expect(full.message.contains("no free port in ports 100-103"))
    }

    @Test("a session bound to an engine that stopped is lost, never moved to the key's next engine")
    mutating func lostSessions() {
        _ = acquire(Self.alice)
        _ = registry.becameReady("e1", now: 1)
        guard case .ready = acquire(Self.alice, bound: "e1", now: 2) else {
            Issue.record("bound call refused")
            return
        }
        _ = registry.stop("e1", reason: "stopped by an operator", now: 3, grace: 5)
        guard case .sessionLost(let stopping) = acquire(Self.alice, bound: "e1", now: 4) else {
            Issue.record("not lost")
            return
        }
        #expect(
            stopping.code == .failedPrecondition && stopping.message.contains("e1")
                && stopping.message.contains("stopped by an operator"))
        #expect(stopping.message.contains("start a new session"))
        // A new session of the same user gets a new engine while the old one still stops.
        guard case .launch(let next) = acquire(Self.alice, now: 4) else {
            Issue.record("no relaunch")
            return
        }
        #expect(next.id == "e2")
        registry.removed("e1")
        guard case .sessionLost(let gone) = acquire(Self.alice, bound: "e1", now: 5) else {
            Issue.record("not lost")
            return
        }
        #expect(gone.message.contains("has stopped"))
        // A session bound to another key's engine is not served by it either.
        _ = registry.becameReady("e2", now: 6)
        guard case .sessionLost = acquire(Self.bob, bound: "e2", now: 7) else {
            Issue.record("cross-key bound session served")
            return
        }
    }

    @Test(
        "idle engines stop idle_seconds after their last session; starting engines past the startup timeout stop; SIGKILL after the grace"
    )
    mutating func due() {
        _ = acquire(Self.alice, now: 0)
        _ = registry.becameReady("e1", now: 1)
        registry.sessionsCounted(["e1": 1], now: 2)
        #expect(due(500) == [])  // a session keeps it
        registry.sessionsCounted([:], now: 600)
        #expect(registry.engines["e1"]?.idleSeconds(now: 630) == 30)
        #expect(due(659) == [])
        // A call handed the engine restarts the idle clock.
        _ = acquire(Self.alice, now: 650)
        #expect(due(700) == [])
        let tasks = due(710)
        guard case .stop(let e, let reason) = tasks.first, tasks.count == 1 else {
            Issue.record("no stop: \(tasks)")
            return
        }
        #expect(e.id == "e1" && e.state == .stopping && reason == "idle for 60 s")
        #expect(due(714) == [])
        guard case .kill(let k) = due(715).first else {
            Issue.record("no kill")
            return
        }
        #expect(k.id == "e1")
        #expect(due(800) == [])  // killed once
        // Startup timeout.
        _ = acquire(Self.bob, now: 1000)
        guard case .stop(let slow, let why) = due(1030).first else {
            Issue.record("no timeout")
            return
        }
        #expect(slow.key == Self.bob && why == "did not become ready within startup_timeout_seconds (30)")
        // A backend removed from the configuration takes its engines with it.
        _ = acquire(Self.carol, now: 2000)
        guard
            case .stop(_, let removed) = registry.due(now: 2001, settings: { _ in nil }).first(where: {
                if case .stop(let e, _) = $0 { e.key == Self.carol } else { false }
            })
        else {
            Issue.record("no stop for removed backend")
            return
        }
        #expect(removed.contains("no longer configured"))
    }

    @Test("share levels name the engine's key")
    func shareKeys() {
        var s = LaunchSettings(command: ["x", "{port}"])
        s.share = .team
        #expect(s.shareKey(backend: "b", team: "t", user: "u").description == "team:t")
        s.share = .user
        #expect(s.shareKey(backend: "b", team: "t", user: "u").description == "user:t/u")
        s.share = .server
        #expect(s.shareKey(backend: "b", team: "t", user: "u").description == "server")
    }

    @Test("command templates: placeholders filled, braces escaped, unknown names found, only safe variables inherited")
    func templates() {
        let values = ["port": "20001", "team": "analytics", "token_file": "/w/e1/token"]
        #expect(LaunchCommand.fill("--port={port}", values) == "--port=20001")
        #expect(LaunchCommand.fill("{{literal}} {team}/{unknown}", values) == "{literal} analytics/{unknown}")
        #expect(LaunchCommand.unknownPlaceholders(in: "{port} {prot} {{x}} {token_file}") == ["prot"])
        var s = LaunchSettings(command: ["engine", "--port", "{port}"])
        s.environment = ["TOKEN_FILE": "{token_file}", "PATH": "/opt/bin"]
        let c = LaunchCommand(
            s, values: values,
            gateway: [
                "PATH": "/usr/bin", "HOME": "/home/g", "SUITE_BACKEND_TOKEN": "secret", "AWS_SECRET_ACCESS_KEY": "k",
            ])
        #expect(c.argv == ["engine", "--port", "20001"])
        #expect(c.environment == ["PATH": "/opt/bin", "HOME": "/home/g", "TOKEN_FILE": "/w/e1/token"])
    }
}

@Suite("Engine registry: warm engines, port conflicts, engines decided by shared state")
struct EngineRegistryWarmTests {
    static let alice = EngineShareKey(backend: "pool", team: "analytics", user: "alice")
    var registry = EngineRegistry()
    var settings: LaunchSettings = {
        var s = LaunchSettings(command: ["engine", "{port}"])
        s.share = .user
        s.ports = 100...104
        s.maxEngines = 3
        s.warmEngines = 1
        return s
    }()
    var made = 0

    mutating func make() -> () -> (id: String, token: String) {
        made += 1
        let n = made
        return { ("e\(n)", "token-\(n)") }
    }

    @Test(
        "warm engines fill up to warm_engines within max_engines; a tenant takes a ready one at once and a replacement follows"
    )
    mutating func warm() {
        let first = registry.warmDeficit(
            backend: "pool", settings: settings, now: 0, make: make(), portIsFree: { _ in true })
        #expect(first.count == 1 && first[0].warm && first[0].state == .starting)
        // Starting warm engines count: nothing more to start.
        #expect(
            registry.warmDeficit(backend: "pool", settings: settings, now: 1, make: make(), portIsFree: { _ in true })
                .isEmpty)
        // Not ready yet: the tenant gets a launch of its own.
        guard
            case .launch(let own) = registry.acquire(
                Self.alice, settings: settings, bound: nil, now: 2, make: make(), portIsFree: { _ in true })
        else {
            Issue.record("no launch")
            return
        }
        registry.removed(own.id)
        _ = registry.becameReady(first[0].id, now: 3)
        guard
            case .ready(let taken) = registry.acquire(
                Self.alice, settings: settings, bound: nil, now: 4, make: make(), portIsFree: { _ in true })
        else {
            Issue.record("the warm engine was not taken")
            return
        }
        #expect(taken.id == first[0].id && !taken.warm && taken.key == Self.alice && taken.token == first[0].token)
        #expect(registry.engine(for: Self.alice)?.id == taken.id)
        let replacement = registry.warmDeficit(
            backend: "pool", settings: settings, now: 5, make: make(), portIsFree: { _ in true })
        #expect(replacement.count == 1 && replacement[0].id != taken.id)
        // Warm engines never stop for idleness.
        _ = registry.becameReady(replacement[0].id, now: 6)
        #expect(
            registry.due(now: 10_000, settings: { _ in settings }).allSatisfy {
                if case .stop(let e, _) = $0 { return e.id != replacement[0].id }
                return true
            })
    }

    @Test("a port found taken ends that launch and launches again elsewhere, for the same waiting calls")
    mutating func portTaken() {
        guard
            case .launch(let e) = registry.acquire(
                Self.alice, settings: settings, bound: nil, now: 0, make: make(), portIsFree: { _ in true })
        else {
            Issue.record("no launch")
            return
        }
        guard
            let (ended, next) = registry.portTaken(
                e.id, settings: settings, now: 1, make: make(), portIsFree: { $0 != e.port })
        else {
            Issue.record("no relaunch")
            return
        }
        #expect(ended.id == e.id && registry.engines[e.id] == nil)
        guard case .launch(let again) = next else {
            Issue.record("no second launch: \(next)")
            return
        }
        #expect(again.port != e.port && again.key == Self.alice && registry.engine(for: Self.alice)?.id == again.id)
        // Not starting any more: nothing to do.
        _ = registry.becameReady(again.id, now: 2)
        #expect(
            registry.portTaken(again.id, settings: settings, now: 3, make: make(), portIsFree: { _ in true }) == nil)
    }

    @Test("with shared state, a proposal is registered only once the replicas agree")
    mutating func proposal() {
        let p = registry.propose(
            Self.alice, settings: settings, host: "10.0.0.5", now: 0, make: make(), portIsFree: { _ in true })
        #expect(p?.host == "10.0.0.5" && p?.address == HostPort(host: "10.0.0.5", port: 100))
        #expect(registry.engines.isEmpty)
        registry.register(p!)
        #expect(registry.engine(for: Self.alice)?.id == p?.id)
    }
}
