import Logging
import NIOCore
import NIOPosix
import SparkgateRESP
import SparkgateRedis
import SparkgateTestSupport
import Testing

@Suite("Redis client against redis-server", .serialized)
struct RedisClientTests {
    @Test("pipelined commands get their own replies in order; a script is sent in full until the server has it")
    func pipelining() async throws {
        guard RedisTestServer.available || RedisTestServer.required else { return }
        let redis = try RedisTestServer()
        defer { redis.stop() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = RedisClient(
            endpoints: RedisEndpoints(addresses: [("127.0.0.1", redis.port)], timeout: .seconds(2)),
            logger: Logger(label: "test"))
        let loop = group.next()
        let replies = (0..<200).map { i in client.send(["SET", "k\(i)", "v\(i)"].map { Array($0.utf8) }, on: loop) }
        for r in replies { #expect(try await r.get().string == "OK") }
        let gets = (0..<200).map { i in client.send(["GET", "k\(i)"].map { Array($0.utf8) }, on: loop) }
        for (i, r) in gets.enumerated() { #expect(try await r.get().string == "v\(i)") }
        let script = RedisScript("return {KEYS[1], ARGV[1], 7}")
        let reply = try await client.run(script, keys: ["a"], arguments: ["b"], on: loop).get()
        #expect(reply == .array([.bulkString(Array("a".utf8)), .bulkString(Array("b".utf8)), .integer(7)]))
        // The server forgets its scripts (a restart, SCRIPT FLUSH): the client sends it in full again.
        _ = try await client.send("SCRIPT", "FLUSH", on: loop).get()
        #expect(try await client.run(script, keys: ["c"], arguments: ["d"], on: loop).get().array?.first?.string == "c")
        await #expect(throws: RedisError.self) { try await client.send("NOSUCHCOMMAND", on: loop).get() }
        client.shutdown()
        try await group.shutdownGracefully()
    }
}
