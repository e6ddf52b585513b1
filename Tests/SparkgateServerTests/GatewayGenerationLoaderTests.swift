import Foundation
import Logging
import SparkgateCore
import SparkgateServer
import Testing

@Suite("Loading a configuration: what config check warns about and refuses in the files it names")
struct GatewayGenerationLoaderTests {
    func directory() throws -> String {
        let dir = NSTemporaryDirectory() + "sparkgate-loader-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(repeating: 0x5A, count: 32).write(to: URL(fileURLWithPath: dir + "/hs.secret"))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: dir + "/hs.secret")
        return dir
    }

    func load(_ extra: String, in dir: String) async throws -> GatewayGeneration {
        let yaml = """
            insecure_plaintext: true
            auth:
              keys: [{kid: k1, algorithm: HS256, secret_file: hs.secret}]
            backends:
              local: {endpoints: ["127.0.0.1:15002"]}
            \(extra)
            """
        return try await GatewayGenerationLoader.load(
            try SparkgateConfig.parse(yaml: yaml, file: dir + "/sparkgate.yaml"), environment: [:],
            logger: Logger(label: "test"))
    }

    @Test(
        "a Sentinel without a password is a warning: anyone who reaches it can name a master that receives the Redis password"
    )
    func sentinelWithoutPassword() async throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let state = try await load(
            "state: {kind: redis, redis: {sentinel: {addresses: [\"127.0.0.1:26379\"], master_name: m}}}", in: dir)
        #expect(
            state.warnings.contains {
                $0.key == "state.redis.sentinel.password_file" && $0.message.contains("name another master")
            })
        try "sentinel-password".write(toFile: dir + "/sentinel.pass", atomically: true, encoding: .utf8)
        chmod(dir + "/sentinel.pass", 0o600)
        let guarded = try await load(
            "state: {kind: redis, redis: {sentinel: {addresses: [\"127.0.0.1:26379\"], master_name: m, password_file: sentinel.pass}}}",
            in: dir)
        #expect(!guarded.warnings.contains { $0.key == "state.redis.sentinel.password_file" })
    }

    @Test("the replicas' secret must hold at least 32 bytes, and a read token must differ from the admin token")
    func secrets() async throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "short".write(toFile: dir + "/replicas.secret", atomically: true, encoding: .utf8)
        await #expect(throws: GatewayGenerationLoader.Failure.self) {
            _ = try await load("state: {kind: redis, redis: {secret_file: replicas.secret}}", in: dir)
        }
        try "same-token".write(toFile: dir + "/admin.token", atomically: true, encoding: .utf8)
        do {
            _ = try await load("admin: {token_file: admin.token, read_token_file: admin.token}", in: dir)
            Issue.record("a read token equal to the admin token was accepted")
        } catch let error as GatewayGenerationLoader.Failure {
            #expect(error.issues.contains { $0.key == "admin.read_token_file" })
        }
    }
}
