import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import SparkgateObservability
import SparkgateTestSupport
import Testing

@Suite("Admin request parsing")
struct AdminRequestParsingTests {
    static func seed(_ name: String) -> UInt64 {
        let seed =
            ProcessInfo.processInfo.environment["SPARKGATE_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        print("\(name) seed \(seed)")
        return seed
    }

    @Test("percent-encoded keys and values come back as they were; malformed escapes are errors, not traps")
    func uriRoundTrip() throws {
        let seed = Self.seed("AdminRequestParsingTests.uriRoundTrip")
        var rng = SplitMix64(seed: seed)
        let alphabet: [Character] = ["a", "Z", "0", "%", "+", "&", "=", "?", "/", " ", "é", "😀", "#", "\u{0}"]
        for round in 0..<2_000 {
            var key = String((0..<Int.random(in: 1...6, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            if key.isEmpty { key = "k" }
            let value = String(
                (0..<Int.random(in: 0...8, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            let target = "/v1/sessions?\(Self.encode(key))=\(Self.encode(value))"
            let parsed = try AdminURI.parse(target).get()
            #expect(
                parsed.path == "/v1/sessions" && parsed.query == [key: value], "round \(round), seed \(seed): \(target)"
            )
        }
    }

    @Test("random request targets never trap")
    func uriRandom() {
        let seed = Self.seed("AdminRequestParsingTests.uriRandom")
        var rng = SplitMix64(seed: seed)
        let pieces = ["/", "?", "&", "=", "%", "%4", "%41", "%zz", "%ff", "%C3", "%A9", "+", "a", "é", "%%", "=="]
        var parsedCount = 0
        for _ in 0..<20_000 {
            let target = (0..<Int.random(in: 0...12, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }
                .joined()
            if case .success = AdminURI.parse(target) { parsedCount += 1 }
        }
        #expect(parsedCount > 0)
        #expect(throws: AdminURIError.self) { try AdminURI.parse("/v1/sessions?team=%").get() }
        #expect(throws: AdminURIError.self) { try AdminURI.parse("/v1/sessions?team=%4").get() }
        #expect(throws: AdminURIError.self) { try AdminURI.parse("/v1/sessions?team=%ff").get() }
        #expect(throws: AdminURIError.self) { try AdminURI.parse("v1/sessions").get() }
        let query = try? AdminURI.parse("/v1/sessions?team=a%26b&&user=").get().query
        #expect(query == ["team": "a&b", "user": ""])
    }

    @Test("random bytes on the admin port get a 400 or nothing, never a crash, and never reach the router unparsed")
    func randomBytesOverHTTP() async throws {
        let seed = Self.seed("AdminRequestParsingTests.randomBytesOverHTTP")
        var rng = SplitMix64(seed: seed)
        let fragments: [[UInt8]] = [
            Array("GET ".utf8), Array("POST ".utf8), Array("/v1/sessions?team=%zz".utf8), Array(" HTTP/1.1\r\n".utf8),
            Array("Host: x\r\n".utf8), Array("Content-Length: 5\r\n".utf8), Array("Content-Length: -1\r\n".utf8),
            Array("Transfer-Encoding: chunked\r\n".utf8), Array("\r\n".utf8), Array("zz\r\n".utf8),
            [0, 0xff, 0x80, 0x0a],
        ]
        for round in 0..<300 {
            let channel = try await Self.adminChannel { request in
                #expect(request.uri.utf8.count < 10_000)
                return AdminResponse(status: 200, json: ["ok": true])
            }
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 1...10, using: &rng) { bytes += fragments.randomElement(using: &rng)! }
            do { try await channel.writeInbound(ByteBuffer(bytes: bytes)) } catch {}
            try await Task.sleep(for: .milliseconds(1))
            var out = ByteBuffer()
            while var part = try await channel.readOutbound(as: ByteBuffer.self) { out.writeBuffer(&part) }
            let text = String(buffer: out)
            #expect(text.isEmpty || text.hasPrefix("HTTP/1."), "round \(round), seed \(seed)")
            _ = try? await channel.finish()
        }
    }

    @Test("a body over 1 MiB is refused with 413 rather than cut")
    func oversizeBody() async throws {
        let channel = try await Self.adminChannel { _ in
            Issue.record("an oversize body reached the router")
            return AdminResponse(status: 200, json: ["ok": true])
        }
        let body = [UInt8](repeating: 0x61, count: (1 << 20) + 1)
        try await channel.writeInbound(
            ByteBuffer(
                bytes: Array("POST /v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
            ))
        var out = ByteBuffer()
        while var part = try await channel.readOutbound(as: ByteBuffer.self) { out.writeBuffer(&part) }
        #expect(String(buffer: out).hasPrefix("HTTP/1.1 413"))
    }

    /// The admin server's pipeline (NIOHTTP1 as configured by `configureHTTPServerPipeline`) around `handler`.
    static func adminChannel(_ handler: @escaping AdminHTTPServer.Handler) async throws -> NIOAsyncTestingChannel {
        try await NIOAsyncTestingChannel { channel in
            try channel.pipeline.syncOperations.configureHTTPServerPipeline()
            try channel.pipeline.syncOperations.addHandler(AdminConnectionHandler(handler: handler))
        }
    }

    static func encode(_ s: String) -> String {
        var out = ""
        for byte in s.utf8 {
            if (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) {
                out.append(Character(UnicodeScalar(byte)))
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}
