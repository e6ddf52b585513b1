import Foundation
import Logging
import NIOCore
import NIOPosix
import SparkgateRESP
import SparkgateRedis
import SparkgateTestSupport
import Synchronization
import Testing

/// The client against a real redis-server that stalls, and against a Sentinel failover.
@Suite("Redis client when Redis fails", .serialized)
struct RedisFailureTests {
    static func elapsed(_ start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    @Test(
        "a stalled server (SIGSTOP) with a password: each step meets its deadline, then commands fail at once, and resume within a second of it answering"
    )
    func stalled() async throws {
        guard RedisTestServer.available || RedisTestServer.required else { return }
        let redis = try RedisTestServer(password: "s3cret")
        defer { redis.stop() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { group.shutdownGracefully { _ in } }
        let endpoints = RedisEndpoints(
            addresses: [("127.0.0.1", redis.port)], password: "s3cret", timeout: .milliseconds(200))
        let client = RedisClient(endpoints: endpoints, logger: Logger(label: "test"))
        defer { client.shutdown() }
        let loop = group.next()
        #expect(try await client.send("SET", "k", "v", on: loop).get().string == "OK")

        redis.pause()
        var start = ContinuousClock.now
        // Which error ends the wait says which rule ended it (the step's own deadline, then the open breaker); the
        // wall-clock bounds only tell a deadline from a hang, with room for a machine busy with other suites.
        await #expect(throws: RedisError.timeout(milliseconds: 200)) {
            try await client.send("GET", "k", on: loop).get()
        }
        let firstFailure = Self.elapsed(start)
        #expect(firstFailure < 3, "the first command waited \(firstFailure) s")
        // The breaker is open: every loop's commands fail at once rather than each waiting out a deadline.
        start = ContinuousClock.now
        for next in [group.next(), group.next()] {
            let error = await #expect(throws: RedisError.self) { try await client.send("GET", "k", on: next).get() }
            #expect(
                error?.description.contains("redis failing for") == true,
                "not the breaker's refusal: \(String(describing: error))")
        }
        #expect(Self.elapsed(start) < 1, "commands waited \(Self.elapsed(start)) s with the breaker open")
        #expect(client.failure?.contains("redis failing for") == true)

        // A client started while Redis is stalled: the connect succeeds (the kernel accepts) and AUTH meets its deadline.
        let fresh = RedisClient(endpoints: endpoints, logger: Logger(label: "test"))
        defer { fresh.shutdown() }
        start = ContinuousClock.now
        await #expect(throws: RedisError.timeout(milliseconds: 200)) {
            try await fresh.send("GET", "k", on: loop).get()
        }
        #expect(Self.elapsed(start) < 3, "a new connection's AUTH waited \(Self.elapsed(start)) s")

        let recovered = RecoveryCount()
        client.onRecovery { recovered.add() }
        redis.resume()
        let resumed = ContinuousClock.now
        while true {
            if (try? await client.send("GET", "k", on: loop).get().string) == "v" { break }
            // The probe retries every 250 ms with a 200 ms deadline: well under a second on an idle machine.
            #expect(Self.elapsed(resumed) < 2.0, "still failing \(Self.elapsed(resumed)) s after Redis answered again")
            if Self.elapsed(resumed) > 3 { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        print(
            "redis stall: first failure after \(firstFailure) s; commands resumed \(Self.elapsed(resumed)) s after SIGCONT"
        )
        #expect(recovered.value == 1)
    }

    @Test("Sentinel: the client finds the master, follows a failover, and never writes to the demoted one")
    func sentinelFailover() async throws {
        guard (RedisTestServer.available && RedisTestServer.sentinelAvailable) || RedisTestServer.required else {
            return
        }
        let master = try RedisTestServer(password: "pw")
        defer { master.stop() }
        let replica = try RedisTestServer(password: "pw", replicaOf: master.port)
        defer { replica.stop() }
        let sentinel = try RedisTestServer.sentinel(masterName: "sg", masterPort: master.port, password: "pw")
        defer { sentinel.stop() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { group.shutdownGracefully { _ in } }
        let endpoints = RedisEndpoints(
            addresses: [],
            sentinel: .init(addresses: [("127.0.0.1", 1), ("127.0.0.1", sentinel.port)], masterName: "sg"),
            password: "pw",
            timeout: .milliseconds(300))
        let client = RedisClient(endpoints: endpoints, logger: Logger(label: "test"))
        defer { client.shutdown() }
        let watcher = SentinelWatcher(client: client, group: group)
        let watching = Task { try? await watcher.run() }
        defer { watching.cancel() }
        let loop = group.next()
        #expect(try await client.send("SET", "k", "1", on: loop).get().string == "OK")
        // The replica has it once it synced.
        let direct = RedisClient(
            endpoints: RedisEndpoints(addresses: [("127.0.0.1", replica.port)], password: "pw", timeout: .seconds(1)),
            logger: Logger(label: "test"))
        defer { direct.shutdown() }
        for _ in 0..<100 where (try? await direct.send("GET", "k", on: loop).get().string) != "1" {
            try await Task.sleep(for: .milliseconds(50))
        }

        // A wrong or stale announcement names the replica: the client must not write there (ROLE says it is
        // a replica), and asks the sentinels again.
        client.masterChanged(host: "127.0.0.1", port: replica.port)
        let misled = ContinuousClock.now
        while (try? await client.send("SET", "k", "x", on: loop).get().string) != "OK" {
            #expect(Self.elapsed(misled) < 3, "never found the master again")
            if Self.elapsed(misled) > 3 { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        let onMaster = RedisClient(
            endpoints: RedisEndpoints(addresses: [("127.0.0.1", master.port)], password: "pw", timeout: .seconds(1)),
            logger: Logger(label: "test"))
        defer { onMaster.shutdown() }
        #expect(try await onMaster.send("GET", "k", on: loop).get().string == "x")

        master.stop()
        let killed = ContinuousClock.now
        var failedFor = 0.0
        while true {
            if (try? await client.send("SET", "k", "2", on: loop).get().string) == "OK" { break }
            failedFor = Self.elapsed(killed)
            #expect(failedFor < 20, "no master after \(failedFor) s")
            if failedFor > 20 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        print("sentinel failover: writes failed for \(failedFor) s after the master died")
        // The write went to the promoted replica.
        let role = try await direct.send("ROLE", on: loop).get()
        #expect(role.array?.first?.string == "master")
        #expect(try await direct.send("GET", "k", on: loop).get().string == "2")
    }
}

final class RecoveryCount: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
