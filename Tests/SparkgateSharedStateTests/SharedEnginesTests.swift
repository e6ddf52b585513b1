import Foundation
import Logging
import NIOCore
import NIOPosix
import SparkgateCore
import SparkgateRESP
import SparkgateRedis
import SparkgateSharedState
import SparkgateTestSupport
import SparkgateTransport
import Testing

/// The shared engine records on a real redis-server, as two replicas use them, and as someone who can write
/// to that Redis attacks them.
@Suite("Shared engine records", .serialized)
struct SharedEnginesTests {
    static let key = EngineShareKey(backend: "pool", team: "analytics", user: "alice")
    static let seal = RecordSeal(secret: Array("the replicas' shared secret, 32+ bytes long".utf8))

    func settings(max: Int = 2) -> LaunchSettings {
        var s = LaunchSettings(command: ["engine", "{port}"])
        s.maxEngines = max
        s.maxEnginesPerTeam = max
        s.ports = 30_000...30_010
        return s
    }

    func engine(_ id: String, _ key: EngineShareKey = Self.key, port: Int = 30_001) -> EngineRegistry.Engine {
        var registry = EngineRegistry()
        return registry.propose(
            key, settings: settings(), host: "127.0.0.1", now: 0, make: { (id, Self.seal.engineToken(id)) },
            portIsFree: { $0 == port })!
    }

    /// A ready warm engine of the pool (started for `team`, or for anyone).
    func warmEngine(_ id: String, team: String? = nil, port: Int = 30_005) -> EngineRegistry.Engine {
        var registry = EngineRegistry()
        var s = settings(max: 4)
        s.warmEngines = team == nil ? 1 : 0
        s.warmEnginesPerTeam = team == nil ? 0 : 1
        let started = registry.warmDeficit(
            backend: "pool", settings: s, teams: team.map { [$0] } ?? [], now: 0,
            make: { (id, Self.seal.engineToken(id)) }, portIsFree: { $0 == port })
        _ = registry.becameReady(started[0].id, now: 0)
        return registry.engines[started[0].id]!
    }

    struct Replicas {
        let redis: RedisTestServer
        let group: MultiThreadedEventLoopGroup
        let a: SharedEngineRecords
        let b: SharedEngineRecords
        let raw: RedisClient
        let rejected: RejectionCount

        var loop: any EventLoop { group.next() }

        func command(_ parts: String...) async throws -> RESPValue {
            try await raw.send(parts.map { Array($0.utf8) }, on: loop).get()
        }

        func stop() {
            group.shutdownGracefully { _ in }
            redis.stop()
        }
    }

    final class RejectionCount: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func add() { lock.withLock { value += 1 } }
        var count: Int { lock.withLock { value } }
    }

    func replicas() throws -> Replicas? {
        guard RedisTestServer.available || RedisTestServer.required else { return nil }
        let redis = try RedisTestServer()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var state = SharedStateSettings()
        state.kind = .redis
        let rejected = RejectionCount()
        func client() -> RedisClient {
            RedisClient(
                endpoints: RedisEndpoints(addresses: [("127.0.0.1", redis.port)], timeout: .seconds(2)),
                logger: Logger(label: "test"))
        }
        func replica() -> SharedEngineRecords {
            SharedEngineRecords(
                shared: SharedState(
                    client: client(), settings: state, ledger: LocalLedger(), group: group,
                    logger: Logger(label: "test"), seal: Self.seal,
                    countRejected: { _ in rejected.add() }
                ) { _ in })
        }
        return Replicas(redis: redis, group: group, a: replica(), b: replica(), raw: client(), rejected: rejected)
    }

    @Test(
        "one engine per share key over both replicas; the other is told where it is; max_engines counts both; gone tells everyone"
    )
    func oneEngine() async throws {
        guard let r = try replicas() else { return }
        defer { r.stop() }
        let (a, b, loop) = (r.a, r.b, r.loop)
        let now = WallClock.now()
        #expect(
            try await a.acquire(engine("e1"), adopting: nil, settings: settings(), now: now, on: loop).get() == .launch)
        guard
            case .exists(let seen) = try await b.acquire(
                engine("e2"), adopting: nil, settings: settings(), now: now, on: loop
            ).get()
        else {
            Issue.record("a second engine was launched for one key")
            return
        }
        #expect(
            seen.id == "e1" && seen.state == .starting && seen.replica == a.replica && seen.port == 30_001
                && seen.shareKey == Self.key.description)
        var ready = engine("e1")
        ready = EngineRegistry.readyCopy(ready)
        try await a.renew([ready], now: now, on: loop).get()
        guard case .valid(let renewed) = try await b.lookUp("e1", on: loop).get() else {
            Issue.record("the renewed record did not verify")
            return
        }
        #expect(renewed.state == .ready)

        let bob = EngineShareKey(backend: "pool", team: "analytics", user: "bob")
        let carol = EngineShareKey(backend: "pool", team: "analytics", user: "carol")
        #expect(
            try await b.acquire(engine("e3", bob), adopting: nil, settings: settings(), now: now, on: loop).get()
                == .launch)
        guard
            case .refused(let error) = try await a.acquire(
                engine("e4", carol), adopting: nil, settings: settings(), now: now, on: loop
            ).get()
        else {
            Issue.record("max_engines did not hold over both replicas")
            return
        }
        #expect(error.message.contains("max_engines (2)"))

        // Use counts: b holds two sessions on a's engine.
        try await b.reportUse(["e1": 2], now: now, on: loop).get()
        #expect(try await a.useElsewhere(["e1"], now: now, on: loop).get() == ["e1": 2])

        try await a.gone(ready, on: loop).get()
        #expect(try await b.lookUp("e1", on: loop).get() == .missing)
        #expect(
            try await b.acquire(engine("e5", carol), adopting: nil, settings: settings(), now: now, on: loop).get()
                == .launch)
        #expect(r.rejected.count == 0)
    }

    @Test("Redis never holds an engine's token: every replica derives it from the engine id and the shared secret")
    func noTokenAtRest() async throws {
        guard let r = try replicas() else { return }
        defer { r.stop() }
        let now = WallClock.now()
        let e1 = engine("e1")
        _ = try await r.a.acquire(e1, adopting: nil, settings: settings(), now: now, on: r.loop).get()
        try await r.a.renew([EngineRegistry.readyCopy(e1)], now: now, on: r.loop).get()
        try await r.a.reportUse(["e1": 1], now: now, on: r.loop).get()
        let token = Self.seal.engineToken("e1")
        #expect(token.count == 64)
        var everything = ""
        for key in (try await r.command("KEYS", "*").array ?? []).compactMap(\.string) {
            everything += key + "\n"
            let type = try await r.command("TYPE", key).string
            if type == "hash" {
                everything += (try await r.command("HGETALL", key).array ?? []).compactMap(\.string).joined(
                    separator: "\n")
            }
            if type == "string" { everything += try await r.command("GET", key).string ?? "" }
            if type == "zset" {
                everything += (try await r.command("ZRANGE", key, "0", "-1").array ?? []).compactMap(\.string).joined(
                    separator: "\n")
            }
        }
        #expect(everything.contains("e1"))
        #expect(!everything.contains(token), "an engine token is stored in Redis")
        #expect(!everything.contains(String(token.prefix(16))))
    }

    @Test("a record rewritten in Redis (another host, another key's name, a forged seal) routes nothing and is counted")
    func tamperedRecords() async throws {
        guard let r = try replicas() else { return }
        defer { r.stop() }
        let now = WallClock.now()
        let e1 = EngineRegistry.readyCopy(engine("e1"))
        _ = try await r.a.acquire(e1, adopting: nil, settings: settings(), now: now, on: r.loop).get()
        try await r.a.renew([e1], now: now, on: r.loop).get()
        let hash = r.a.keys.engine("e1")

        // The engine's address pointed at an attacker's listener.
        _ = try await r.command("HSET", hash, "h", "10.6.6.6", "p", "30002")
        #expect(try await r.b.lookUp("e1", on: r.loop).get() == .rejected)
        #expect(
            try await r.b.acquire(engine("e2"), adopting: nil, settings: settings(), now: now, on: r.loop).get()
                == .rejected(id: "e1"))
        #expect(r.rejected.count == 2)
        // The launching replica's next renewal writes the record back as it is.
        try await r.a.renew([e1], now: now, on: r.loop).get()
        guard case .valid(let repaired) = try await r.b.lookUp("e1", on: r.loop).get() else {
            Issue.record("renewal did not repair the record")
            return
        }
        #expect(repaired.host == "127.0.0.1" && repaired.port == 30_001)

        // Another tenant's name pointed at alice's engine: its record is valid, but it does not serve bob.
        let bob = EngineShareKey(backend: "pool", team: "analytics", user: "bob")
        _ = try await r.command("SET", r.a.keys.engineFor(bob), "e1")
        #expect(
            try await r.b.acquire(
                engine("e3", bob, port: 30_003), adopting: nil, settings: settings(), now: now, on: r.loop
            ).get() == .rejected(id: "e1"))
        try await r.b.unmap(bob, id: "e1", on: r.loop).get()
        #expect(
            try await r.b.acquire(
                engine("e3", bob, port: 30_003), adopting: nil, settings: settings(), now: now, on: r.loop
            ).get() == .launch)
        // Alice's own name pointed at bob's engine: alice's engine's next renewal takes its name back.
        _ = try await r.command("SET", r.a.keys.engineFor(Self.key), "e3")
        try await r.a.renew([e1], now: now, on: r.loop).get()
        #expect(try await r.command("GET", r.a.keys.engineFor(Self.key)).string == "e1")

        // A record made up whole, with a seal made with another secret.
        let forged = SharedEngine(e1, replica: "attacker").hash(RecordSeal(secret: Array(repeating: 1, count: 32)))
        _ = try await r.command("DEL", hash)
        var hset = ["HSET", hash]
        for (field, value) in forged { hset += [field, value] }
        _ = try await r.raw.send(hset.map { Array($0.utf8) }, on: r.loop).get()
        #expect(try await r.b.lookUp("e1", on: r.loop).get() == .rejected)
    }

    @Test(
        "a warm engine goes to exactly one tenant: a second adoption in the same moment gets a launch, and only its own replica adopts it"
    )
    func warmAdoptedOnce() async throws {
        guard let r = try replicas() else { return }
        defer { r.stop() }
        let now = WallClock.now()
        let warm = warmEngine("w1")
        #expect(try await r.a.registerWarm(warm, settings: settings(max: 4), now: now, on: r.loop).get())
        try await r.a.renew([warm], now: now, on: r.loop).get()
        let alice = Self.key
        let dave = EngineShareKey(backend: "pool", team: "data-eng", user: "dave")
        // Both calls offer the warm engine (as a replica whose reservation failed would): one adopts it.
        let (a, loop) = (r.a, r.loop)
        let offers = [
            a.acquire(
                engine("p1", alice, port: 30_006), adopting: warm, settings: settings(max: 4), now: now, on: loop),
            a.acquire(engine("p2", dave, port: 30_007), adopting: warm, settings: settings(max: 4), now: now, on: loop),
        ]
        let verdicts = [try await offers[0].get(), try await offers[1].get()]
        #expect(
            verdicts.filter { $0 == .adopt }.count == 1 && verdicts.filter { $0 == .launch }.count == 1, "\(verdicts)")
        // Whoever lost launched its own engine; the winner's name is the warm engine, sealed for it alone.
        let winner = verdicts[0] == .adopt ? alice : dave
        let loser = verdicts[0] == .adopt ? dave : alice
        guard
            case .exists(let adopted) = try await r.b.acquire(
                engine("p3", winner, port: 30_008), adopting: nil, settings: settings(max: 4), now: now, on: r.loop
            ).get()
        else {
            Issue.record("the winner's name does not name the warm engine")
            return
        }
        #expect(adopted.id == "w1" && adopted.shareKey == winner.description && !adopted.warm)
        guard
            case .exists(let own) = try await r.b.acquire(
                engine("p4", loser, port: 30_009), adopting: nil, settings: settings(max: 4), now: now, on: r.loop
            ).get()
        else {
            Issue.record("the loser has no engine of its own")
            return
        }
        #expect(own.id != "w1")

        // Another replica's warm engine, or one started for another team, is never adopted.
        let otherWarm = warmEngine("w2", team: "analytics", port: 30_010)
        #expect(try await r.a.registerWarm(otherWarm, settings: settings(max: 8), now: now, on: r.loop).get())
        let erin = EngineShareKey(backend: "pool", team: "analytics", user: "erin")
        #expect(
            try await r.b.acquire(
                engine("p5", erin, port: 30_002), adopting: otherWarm, settings: settings(max: 8), now: now, on: r.loop
            ).get() == .launch)
        let frank = EngineShareKey(backend: "pool", team: "data-eng", user: "frank")
        #expect(
            try await r.a.acquire(
                engine("p6", frank, port: 30_003), adopting: otherWarm, settings: settings(max: 8), now: now, on: r.loop
            ).get() == .launch)
    }
}
