import Foundation
import Logging
import NIOCore
import NIOPosix
import SparkgateCore
import SparkgateRedis
import Testing
import SparkgateServer
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport

/// The shared engine records on a real redis-server, as two replicas use them.
@Suite("Shared engine records", .serialized)
struct SharedEnginesTests {
    static let key = EngineShareKey(backend: "pool", team: "analytics", user: "alice")

    func settings(max: Int = 2) -> LaunchSettings {
        var s = LaunchSettings(command: ["engine", "{port}"])
        s.maxEngines = max
        s.maxEnginesPerTeam = max
        s.ports = 30_000...30_010
        return s
    }

    func engine(_ id: String, _ key: EngineShareKey = Self.key, port: Int = 30_001) -> EngineRegistry.Engine {
        var registry = EngineRegistry()
        return registry.propose(key, settings: settings(), host: "127.0.0.1", now: 0, make: { (id, "token-\(id)") }, portIsFree: { $0 == port })!
    }

    @Test("one engine per share key over both replicas; the other is told where it is; max_engines counts both; gone tells everyone")
    func oneEngine() async throws {
        guard RedisTestServer.available || RedisTestServer.required else { return }
        let redis = try RedisTestServer()
        defer { redis.stop() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { group.shutdownGracefully { _ in } }
        var state = StateSettings()
        state.kind = .redis
        func replica() -> SharedEngineRecords {
            let client = RedisClient(endpoints: RedisEndpoints(addresses: [("127.0.0.1", redis.port)], timeout: .seconds(2)), logger: Logger(label: "test"))
            return SharedEngineRecords(shared: SharedState(client: client, settings: state, ledger: LocalLedger(), group: group, logger: Logger(label: "test")) { _ in })
        }
        let a = replica()
        let b = replica()
        let loop = group.next()
        let now = WallClock.now()
        #expect(try await a.acquire(engine("e1"), adopting: nil, settings: settings(), now: now, on: loop).get() == .launch)
        guard case .exists(let seen) = try await b.acquire(engine("e2"), adopting: nil, settings: settings(), now: now, on: loop).get() else {
            Issue.record("a second engine was launched for one key"); return
        }
        #expect(seen.id == "e1" && seen.state == .starting && seen.replica == a.replica && seen.token == "token-e1" && seen.port == 30_001)
        var ready = engine("e1")
        ready = EngineRegistry.readyCopy(ready)
        try await a.renew([ready], now: now, on: loop).get()
        #expect(try await b.lookUp("e1", on: loop).get()?.state == .ready)

        let bob = EngineShareKey(backend: "pool", team: "analytics", user: "bob")
        let carol = EngineShareKey(backend: "pool", team: "analytics", user: "carol")
        #expect(try await b.acquire(engine("e3", bob), adopting: nil, settings: settings(), now: now, on: loop).get() == .launch)
        guard case .refused(let error) = try await a.acquire(engine("e4", carol), adopting: nil, settings: settings(), now: now, on: loop).get() else {
            Issue.record("max_engines did not hold over both replicas"); return
        }
        #expect(error.message.contains("max_engines (2)"))

        // Use counts: b holds two sessions on a's engine.
        try await b.reportUse(["e1": 2], now: now, on: loop).get()
        #expect(try await a.useElsewhere(["e1"], now: now, on: loop).get() == ["e1": 2])

        try await a.gone(ready, on: loop).get()
        #expect(try await b.lookUp("e1", on: loop).get() == nil)
        #expect(try await b.acquire(engine("e5", carol), adopting: nil, settings: settings(), now: now, on: loop).get() == .launch)
    }
}
