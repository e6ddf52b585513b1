import SparkgateCore
import Testing

@Suite("Engines: one OS user per tenant, warm engines per team, a warm engine offered to one call at a time")
struct EngineIdentityTests {
    static let alice = EngineShareKey(backend: "pool", team: "analytics", user: nil)
    static let dave = EngineShareKey(backend: "pool", team: "data-eng", user: nil)

    func settings(_ edit: (inout LaunchSettings) -> Void = { _ in }) -> LaunchSettings {
        var s = LaunchSettings(command: ["engine", "{port}"])
        s.share = .team
        s.ports = 100...109
        s.maxEngines = 6
        s.maxEnginesPerTeam = 1
        s.runAs = "sg-{team}"
        edit(&s)
        return s
    }

    func maker() -> () -> (id: String, token: String) {
        var n = 0
        return {
            n += 1
            return ("e\(n)", "t\(n)")
        }
    }

    @Test(
        "warm_engines_per_team keeps each team's warm engines, as the team's user; only that team takes them, and they do not count as its engines"
    )
    func warmPerTeam() throws {
        var registry = EngineRegistry()
        let s = settings { $0.warmEnginesPerTeam = 1 }
        let make = maker()
        let started = registry.warmDeficit(
            backend: "pool", settings: s, teams: ["analytics", "data-eng"], now: 0, make: make,
            portIsFree: { _ in true })
        #expect(started.map(\.key.team) == ["analytics", "data-eng"])
        #expect(started.map(\.osUser) == ["sg-analytics", "sg-data-eng"])
        #expect(
            registry.warmDeficit(
                backend: "pool", settings: s, teams: ["analytics", "data-eng"], now: 0, make: make,
                portIsFree: { _ in true }
            ).isEmpty)
        for engine in started { _ = registry.becameReady(engine.id, now: 1) }
        // A warm engine is not one of its team's engines: max_engines_per_team (1) still lets the team take it.
        guard
            case .ready(let taken) = registry.acquire(
                Self.dave, settings: s, bound: nil, now: 2, make: make, portIsFree: { _ in true })
        else {
            Issue.record("data-eng did not take its warm engine")
            return
        }
        #expect(taken.id == started[1].id && taken.osUser == "sg-data-eng" && !taken.warm)
        // analytics' warm engine is never offered to another team.
        let other = EngineShareKey(backend: "pool", team: "ops", user: nil)
        #expect(registry.readyWarmEngine(for: other) == nil)
        #expect(registry.readyWarmEngine(for: Self.alice)?.id == started[0].id)
    }

    @Test("a reserved warm engine is offered to no other call until the shared state answers")
    func reservation() throws {
        var registry = EngineRegistry()
        let s = settings {
            $0.runAs = nil
            $0.warmEngines = 1
            $0.maxEnginesPerTeam = 2
        }
        let make = maker()
        let warm = registry.warmDeficit(backend: "pool", settings: s, now: 0, make: make, portIsFree: { _ in true })[0]
        _ = registry.becameReady(warm.id, now: 0)
        #expect(registry.reserve(warm.id) != nil)
        #expect(registry.readyWarmEngine(for: Self.dave) == nil)
        #expect(registry.reserve(warm.id) == nil)
        registry.unreserve(warm.id)
        #expect(registry.readyWarmEngine(for: Self.dave)?.id == warm.id)
    }

    @Test("a key whose OS user another tenant's engine runs as gets no engine; allow_shared_run_as accepts it")
    func sharedUserRefused() throws {
        var registry = EngineRegistry()
        // A fixed name (allowed here only to reach the run-time check) maps both teams to one user.
        let s = settings { $0.runAs = "spark" }
        guard
            case .launch(let first) = registry.acquire(
                Self.alice, settings: s, bound: nil, now: 0, make: maker(), portIsFree: { _ in true })
        else {
            Issue.record("no launch")
            return
        }
        #expect(first.osUser == "spark")
        guard
            case .refused(let error) = registry.acquire(
                Self.dave, settings: s, bound: nil, now: 0, make: maker(), portIsFree: { _ in true })
        else {
            Issue.record("two teams' engines would run as one user")
            return
        }
        #expect(error.code == .failedPrecondition && error.message.contains("already runs as"))
        let shared = settings {
            $0.runAs = "spark"
            $0.allowSharedRunAs = true
        }
        guard
            case .launch = registry.acquire(
                Self.dave, settings: shared, bound: nil, now: 0, make: maker(), portIsFree: { _ in true })
        else {
            Issue.record("allow_shared_run_as did not allow it")
            return
        }
    }
}

@Suite("Records replicas share: sealed, tokens derived, messages dated")
struct RecordSealTests {
    let seal = RecordSeal(secret: Array("0123456789abcdef0123456789abcdef".utf8))

    @Test("an engine token depends on the id and the secret only; a seal covers kind and every field")
    func seals() {
        #expect(
            seal.engineToken("pool-1")
                == RecordSeal(secret: Array("0123456789abcdef0123456789abcdef".utf8)).engineToken("pool-1"))
        #expect(seal.engineToken("pool-1") != seal.engineToken("pool-2"))
        #expect(seal.engineToken("pool-1") != RecordSeal(secret: Array(repeating: 0, count: 32)).engineToken("pool-1"))
        let mac = seal.seal(.placement, ["k", "10.0.0.1:1", ""])
        #expect(seal.verifies(mac, .placement, ["k", "10.0.0.1:1", ""]))
        #expect(!seal.verifies(mac, .placement, ["k", "10.0.0.2:1", ""]))
        #expect(!seal.verifies(mac, .engine, ["k", "10.0.0.1:1", ""]))
        // Field boundaries are part of what is sealed.
        #expect(!seal.verifies(mac, .placement, ["k1", "0.0.0.1:1", ""]))
        #expect(!seal.verifies("", .placement, ["k", "10.0.0.1:1", ""]))
    }

    @Test("a sealed message opens within its window; a forged, altered or old one does not")
    func messages() {
        let text = seal.sealMessage("body", now: 1000)
        #expect(seal.openMessage(text, now: 1010, window: 30) == .valid(body: "body", seal: String(text.suffix(32))))
        #expect(seal.openMessage(text, now: 1040, window: 30) == .stale)
        #expect(seal.openMessage(text.replacingOccurrences(of: "body", with: "bodx"), now: 1000, window: 30) == .forged)
        #expect(seal.openMessage("4:body", now: 1000, window: 30) == .forged)
        #expect(RecordSeal.random().openMessage(text, now: 1000, window: 30) == .forged)
    }

    @Test("an engine record reads back only as sealed; any changed field is rejected; it serves only its own key")
    func engineRecords() throws {
        var registry = EngineRegistry()
        var s = LaunchSettings(command: ["e", "{port}"])
        s.ports = 20_000...20_009
        let key = EngineShareKey(backend: "pool", team: "analytics", user: nil)
        guard
            case .launch(let engine) = registry.acquire(
                key, settings: s, bound: nil, now: 0, make: { ("e1", "t") }, portIsFree: { _ in true })
        else { return }
        let record = SharedEngine(engine, replica: "r1")
        let hash = record.hash(seal)
        let values = (SharedEngine.fieldNames + [SharedEngine.sealField]).map { hash[$0] }
        #expect(SharedEngine.read(id: "e1", values, seal: seal) == .valid(record))
        #expect(SharedEngine.read(id: "e2", values, seal: seal) == .rejected)
        for index in SharedEngine.fieldNames.indices {
            var changed = values
            changed[index] = (changed[index] ?? "") + "0"
            #expect(
                SharedEngine.read(id: "e1", changed, seal: seal) == .rejected, "field \(SharedEngine.fieldNames[index])"
            )
        }
        #expect(SharedEngine.read(id: "e1", Array(repeating: nil, count: values.count), seal: seal) == .missing)
        #expect(record.serves(key, ports: s.ports))
        #expect(!record.serves(EngineShareKey(backend: "pool", team: "data-eng", user: nil), ports: s.ports))
        #expect(!record.serves(key, ports: 30_000...30_001))
    }

    @Test("log text for a client: the engine's token and credential-shaped runs are redacted, words are kept")
    func redaction() {
        let token = "3f1c9a0b7d2e4f6a8c1b3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f70"
        let text = "Exception: bind failed on port 20001 | token=\(token) | key AKIAIOSFODNN7EXAMPLE1234567 ok"
        let out = LogRedaction.redact(text, secrets: [token])
        #expect(!out.contains(token) && !out.contains("AKIAIOSFODNN7EXAMPLE1234567"))
        #expect(out.contains("bind failed on port 20001") && out.contains(LogRedaction.placeholder))
    }
}

@Suite("Admin access")
struct AdminAccessTests {
    func access(
        _ edit: (inout SparkgateConfig.Admin) -> Void = { _ in }, admin: Bool = false, read: Bool = false
    ) -> AdminAccess {
        var settings = SparkgateConfig.Admin()
        edit(&settings)
        return AdminAccess(admin: settings, adminTokenConfigured: admin, readTokenConfigured: read)
    }

    @Test("every (method, token) pair gets its answer")
    func table() {
        let closed = access(admin: true, read: true)
        #expect(closed.decide(method: "GET", path: "/healthz", presented: .none) == .allowed)
        #expect(closed.decide(method: "GET", path: "/v1/sessions", presented: .none) != .allowed)
        #expect(closed.decide(method: "GET", path: "/v1/sessions", presented: .read) == .allowed)
        #expect(
            closed.decide(method: "POST", path: "/v1/reload", presented: .read)
                == .refused(
                    status: 403,
                    message:
                        "POST /v1/reload changes the gateway: the read token (admin.read_token_file) opens GETs only; use the admin token"
                ))
        #expect(closed.decide(method: "POST", path: "/v1/reload", presented: .admin) == .allowed)
        #expect(closed.decide(method: "GET", path: "/metrics", presented: .wrong) != .allowed)
        // Nothing configured: reads are closed unless opened; changes too.
        let bare = access()
        #expect(bare.decide(method: "GET", path: "/metrics", presented: .none) != .allowed)
        #expect(bare.decide(method: "DELETE", path: "/v1/engines/x", presented: .none) != .allowed)
        #expect(
            access({ $0.allowUnauthenticatedReads = true }).decide(method: "GET", path: "/metrics", presented: .none)
                == .allowed)
        #expect(
            access({ $0.allowUnauthenticatedMutations = true }).decide(
                method: "POST", path: "/v1/reload", presented: .none) == .allowed)
        // With an admin token, no opt-in opens a change without it.
        #expect(
            access({ $0.allowUnauthenticatedMutations = true }, admin: true).decide(
                method: "POST", path: "/v1/reload", presented: .none) != .allowed)
        #expect(
            access({ $0.publicReadiness = true }, admin: true).decide(method: "GET", path: "/readyz", presented: .none)
                == .allowed)
    }
}
