import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2
import SparkgateCore
import SparkgateFraming
import SparkgateObservability
import SparkgateServer
import SparkgateTestSupport
import Testing

/// What the gateway refuses on its own, before any backend: every byte in memory, no socket, no engine. The
/// behaviour real clients see of the same refusals stays in the integration suite.
@Suite("Refusals in memory")
struct RefusalsInMemoryTests {
    static let echo: ScriptedBackend.Script = { request in
        let session = request.messages.first.map { SparkMessages.routing($0).session ?? "" } ?? ""
        return [
            ScriptedBackend.head(), ScriptedBackend.message(SparkMessages.response(session: session)),
            ScriptedBackend.trailers(),
        ]
    }

    @Test(
        "a forged, expired, wrongly addressed or unknown-key token is UNAUTHENTICATED with its reason; the token is never echoed"
    )
    func badTokens() async throws {
        let g = try await InMemoryGateway(backend: Self.echo)
        let good = g.token(user: "alice")
        let parts = good.split(separator: ".").map(String.init)
        func b64(_ text: String) -> String { Base64URL.encode(Array(text.utf8)) }
        let forged =
            "\(parts[0]).\(b64(#"{"iss":"test","aud":"spark-connect","sub":"admin","team":"analytics","exp":9999999999}"#)).\(parts[2])"
        let expired = g.signed(#"{"iss":"test","aud":"spark-connect","sub":"alice","team":"analytics","exp":1000}"#)
        let wrongAudience = g.signed(
            #"{"iss":"test","aud":"elsewhere","sub":"alice","team":"analytics","exp":9999999999}"#)
        let unknownKey = "\(b64(#"{"alg":"HS256","kid":"k9","typ":"JWT"}"#)).\(parts[1]).\(parts[2])"
        for (token, reason) in [
            (forged, "signature does not verify with key 'k1'"), (expired, "token expired at 1970-01-01T00:16:40Z"),
            (wrongAudience, "audience 'elsewhere' not accepted; expected 'spark-connect'"),
            (unknownKey, "unknown key id 'k9'"),
        ] {
            let id = g.call("Config", token: token, messages: [SparkMessages.request()])
            g.pump()
            let answer = try #require(g.recorder.streams[id])
            #expect(answer.status == grpcStatus(.unauthenticated), "\(reason)")
            #expect(answer.message?.contains(reason) == true, "\(answer.message ?? "") does not say \(reason)")
            #expect(answer.message?.contains(token) == false)
        }
        // No token at all: the client is told how to send one.
        let bare = g.call("Config", messages: [SparkMessages.request()], tokenHeader: nil)
        // A valid token of a team this gateway does not serve: not who, but where, is refused.
        let stranger = g.call("Config", token: g.token(team: "marketing"), messages: [SparkMessages.request()])
        g.pump()
        #expect(g.recorder.streams[bare]?.status == grpcStatus(.unauthenticated))
        #expect(g.recorder.streams[bare]?.message?.contains("no bearer token: connect with sc://") == true)
        #expect(g.recorder.streams[stranger]?.status == grpcStatus(.permissionDenied))
        #expect(g.recorder.streams[stranger]?.message?.contains("team 'marketing' is not configured") == true)
        #expect(g.connector.pairs.isEmpty)
    }

    @Test("operation ids must be UUIDs, however long the garbage: INVALID_ARGUMENT, and nothing reaches the backend")
    func operationIDs() async throws {
        let g = try await InMemoryGateway(backend: Self.echo)
        for id in [String(repeating: "x", count: 900_000), "not-a-uuid", "{\(SparkMessages.operationID)}"] {
            let stream = g.call("ExecutePlan", messages: [SparkMessages.request(operation: id)])
            g.read(stream, bytes: 1 << 20)
            g.pump()
            #expect(g.recorder.streams[stream]?.status == grpcStatus(.invalidArgument))
            #expect(g.recorder.streams[stream]?.message?.contains("operation_id must be a UUID") == true)
        }
        #expect(g.connector.pairs.isEmpty)
    }

    @Test(
        "a message Sparkgate cannot route (no session id, an id that is not a UUID) is refused naming the client_type it came from"
    )
    func unroutableMessagesNameTheClient() async throws {
        let g = try await InMemoryGateway(backend: Self.echo)
        let old = "_SPARK_CONNECT_PYTHON spark/3.5.9 os/linux python/3.11.7"
        for (message, says) in [
            (SparkMessages.request(session: nil, clientType: old), "has no session_id"),
            (SparkMessages.request(session: "session-1", clientType: old), "session_id must be a UUID"),
            (SparkMessages.request(operation: "op-1", clientType: old), "operation_id must be a UUID"),
        ] {
            let stream = g.call("ExecutePlan", messages: [message])
            g.read(stream, bytes: 1 << 20)
            g.pump()
            let answer = try #require(g.recorder.streams[stream])
            #expect(answer.status == grpcStatus(.invalidArgument))
            #expect(answer.message?.contains(says) == true, "\(answer.message ?? "")")
            #expect(answer.message?.contains("sent by client_type '\(old)'") == true, "\(answer.message ?? "")")
        }
        let anonymous = g.call("Config", messages: [SparkMessages.request(session: "x")])
        g.pump()
        #expect(g.recorder.streams[anonymous]?.message?.contains("the request names no client_type") == true)
        #expect(g.connector.pairs.isEmpty)
    }

    @Test(
        "past the first request, an oversize token or header block is refused on its stream, naming the limit; the connection stays good"
    )
    func oversizeHeaders() async throws {
        let g = try await InMemoryGateway(backend: Self.echo)
        let first = g.call("Config", messages: [SparkMessages.request()])
        g.pump()
        #expect(g.recorder.streams[first]?.status == "0")
        let bigToken = g.call(
            "Config", token: String(repeating: "a", count: 100_000), messages: [SparkMessages.request()])
        g.pump()
        #expect(g.recorder.streams[bigToken]?.status == grpcStatus(.unauthenticated))
        #expect(
            g.recorder.streams[bigToken]?.message?.contains("token of 100000 bytes is over auth.max_token_bytes (8192)")
                == true)
        // Two fields: one field past 64 KiB is HPACK's concern (see below), the block's size the gateway's.
        let padding = String(repeating: "p", count: 50_000)
        let padded = g.call(
            "Config", messages: [SparkMessages.request()],
            extraHeaders: [("x-padding", padding), ("x-padding-2", padding)])
        g.pump()
        #expect(g.recorder.streams[padded]?.status == grpcStatus(.resourceExhausted))
        #expect(g.recorder.streams[padded]?.message?.contains("max_request_header_bytes") == true)
        let after = g.call("Config", messages: [SparkMessages.request()])
        g.pump()
        #expect(g.recorder.streams[after]?.status == "0")
        #expect(g.recorder.goAway == nil)
    }

    @Test(
        "one header field past 64 KiB as HPACK encodes it (libnghttp2's bound on a field) ends the connection with COMPRESSION_ERROR, before any stream is read"
    )
    func oversizeField() async throws {
        let g = try await InMemoryGateway(backend: Self.echo)
        let huge = g.call(
            "Config", messages: [SparkMessages.request()],
            extraHeaders: [("x-padding", String(repeating: "p", count: 100_000))])
        g.pump()
        #expect(g.recorder.streams[huge]?.status == nil)
        #expect(g.recorder.goAwayCode == .compressionError)
        #expect(g.connector.pairs.isEmpty)
    }

    @Test("malformed requests are refused at once with a status that says what was wrong")
    func malformed() async throws {
        let g = try await InMemoryGateway(backend: Self.echo)
        let valid = GRPCMessage.frame(payload: SparkMessages.request()).framed
        var truncated = valid
        truncated.moveWriterIndex(to: valid.writerIndex - 3)
        var hugePrefix = ByteBuffer()
        hugePrefix.writeInteger(UInt8(0))
        hugePrefix.writeInteger(UInt32((2 << 30) - 1))
        hugePrefix.writeBytes([UInt8](repeating: 0, count: 100))
        var compressed = valid
        compressed.setInteger(UInt8(1), at: compressed.readerIndex)
        var twice = valid
        twice.writeImmutableBuffer(valid)
        let cases: [(String, ByteBuffer, GRPCStatusCode, String)] = [
            ("truncated", truncated, .invalidArgument, "in the middle of a message"),
            ("2 GiB prefix", hugePrefix, .resourceExhausted, "larger than max_message_bytes"),
            (
                "not protobuf", GRPCMessage.frame(payload: [0xFF, 0xFF, 0xFF, 0xFF]).framed, .invalidArgument,
                "not a valid protobuf message"
            ),
            ("compressed", compressed, .unimplemented, "compressed request messages are not supported"),
            ("two messages on a unary call", twice, .invalidArgument, "takes exactly one request message"),
        ]
        for (name, body, code, text) in cases {
            let id = g.call("Config", raw: body)
            g.pump()
            #expect(g.recorder.streams[id]?.status == grpcStatus(code), "\(name)")
            #expect(
                g.recorder.streams[id]?.message?.contains(text) == true,
                "\(name): \(g.recorder.streams[id]?.message ?? "")")
        }
        #expect(g.connector.pairs.isEmpty)
    }

    @Test(
        "a message past a configured max_message_bytes is RESOURCE_EXHAUSTED naming the key, a request before it reaches the engine, a response before it reaches the client"
    )
    func messageLimit() async throws {
        let g = try await InMemoryGateway(
            config: "max_message_bytes: 1048576",
            backend: { request in
                let session = request.messages.first.map { SparkMessages.routing($0).session ?? "" } ?? ""
                return [
                    ScriptedBackend.head(),
                    ScriptedBackend.message(SparkMessages.response(session: session, arrowBytes: 2 << 20, rows: 1)),
                    ScriptedBackend.trailers(),
                ]
            })
        let big = g.call("Config", messages: [SparkMessages.request(padding: 2 << 20)])
        g.pump()
        expectAnswer(g, big, .resourceExhausted, saying: "max_message_bytes (1048576)")
        #expect(g.connector.pairs.isEmpty)

        let result = g.call("ExecutePlan", messages: [SparkMessages.request(operation: SparkMessages.operationID)])
        g.read(result, bytes: 4 << 20)
        g.pump()
        expectAnswer(g, result, .resourceExhausted, saying: "max_message_bytes (1048576)")
        // Nothing of the oversize message was passed on.
        #expect((g.recorder.streams[result]?.data.readableBytes ?? 0) < 1 << 20)
    }

    @Test(
        "without a token nothing but /healthz answers; the read token opens GETs only; opting in opens reads or changes on a trusted host"
    )
    func adminMutations() async throws {
        let g = try await InMemoryGateway(backend: Self.echo)
        let routes = AdminRoutes(
            runtime: g.runtime, reloader: Reloader(runtime: g.runtime, file: g.directory + "/sparkgate.yaml")
        ) { [] }
        func request(_ method: String, _ uri: String, token: String? = nil) -> AdminRequest {
            AdminRequest(method: method, uri: uri, authorization: token.map { "Bearer \($0)" }, body: [])
        }
        #expect(await routes.handle(request("GET", "/healthz")).status == 200)
        let listing = await routes.handle(request("GET", "/v1/sessions"))
        #expect(listing.status == 401)
        #expect(String(decoding: listing.body, as: UTF8.self).contains("admin.read_token_file"))
        #expect(await routes.handle(request("GET", "/metrics")).status == 401)
        let reload = await routes.handle(request("POST", "/v1/reload"))
        #expect(reload.status == 403)
        #expect(String(decoding: reload.body, as: UTF8.self).contains("admin.token_file"))
        #expect(await routes.handle(request("DELETE", "/v1/sessions/alice/\(SparkMessages.sessionID)")).status == 403)

        let opted = try await InMemoryGateway(
            config: "admin: {allow_unauthenticated_mutations: true, allow_unauthenticated_reads: true}",
            backend: Self.echo)
        let openRoutes = AdminRoutes(
            runtime: opted.runtime,
            reloader: Reloader(runtime: opted.runtime, file: opted.directory + "/sparkgate.yaml")
        ) { [] }
        #expect(await openRoutes.handle(request("GET", "/v1/sessions")).status == 200)
        #expect(
            await openRoutes.handle(request("DELETE", "/v1/sessions/alice/\(SparkMessages.sessionID)")).status == 404)

        let tokens = g.directory + "/tokens"
        try FileManager.default.createDirectory(atPath: tokens, withIntermediateDirectories: true)
        try "admin-token-0123456789".write(toFile: tokens + "/admin", atomically: true, encoding: .utf8)
        try "read-token-0123456789".write(toFile: tokens + "/read", atomically: true, encoding: .utf8)
        let guarded = try await InMemoryGateway(
            config: "admin: {token_file: \(tokens)/admin, read_token_file: \(tokens)/read}", backend: Self.echo)
        let guardedRoutes = AdminRoutes(
            runtime: guarded.runtime,
            reloader: Reloader(runtime: guarded.runtime, file: guarded.directory + "/sparkgate.yaml")
        ) { [] }
        #expect(
            await guardedRoutes.handle(request("GET", "/v1/sessions", token: "read-token-0123456789")).status == 200)
        #expect(await guardedRoutes.handle(request("GET", "/v1/sessions", token: "wrong")).status == 401)
        #expect(await guardedRoutes.handle(request("POST", "/v1/reload", token: "read-token-0123456789")).status == 403)
        #expect(
            await guardedRoutes.handle(
                request("DELETE", "/v1/sessions/alice/\(SparkMessages.sessionID)", token: "admin-token-0123456789")
            ).status == 404)
    }

    @Test(
        "ReattachExecute, ReleaseExecute, ReleaseSession and Interrupt have a rate bucket of their own: past its burst they are RESOURCE_EXHAUSTED naming it, and ordinary calls still pass"
    )
    func housekeepingRate() async throws {
        let g = try await InMemoryGateway(
            teams: "{tidy: {quotas: {housekeeping_requests_per_second: 2, housekeeping_request_burst: 3}}}",
            backend: Self.echo)
        let token = g.token(user: "tidy-user", team: "tidy")
        let config = g.call("Config", token: token, messages: [SparkMessages.request()])
        g.pump()
        #expect(g.recorder.streams[config]?.status == grpcStatus(.ok))
        var answers: [(status: String?, message: String?)] = []
        for _ in 0..<12 {
            // ReleaseExecute(release_all) of an operation: session_id 1, user_context 2, operation_id 3,
            // release_all 5.
            var release: [UInt8] = []
            WireEncoding.appendString(field: 1, SparkMessages.sessionID, to: &release)
            release += UserContextField.encode(user: "whoever")
            WireEncoding.appendString(field: 3, UUID().uuidString.lowercased(), to: &release)
            WireEncoding.appendLengthDelimited(field: 5, [], to: &release)
            let id = g.call("ReleaseExecute", token: token, messages: [release])
            g.pump()
            answers.append((g.recorder.streams[id]?.status, g.recorder.streams[id]?.message))
        }
        // The burst passes; the bucket refills at 2 a second, so of the nine after it at most one more can.
        #expect(answers.prefix(3).allSatisfy { $0.status == grpcStatus(.ok) }, "\(answers)")
        let refused = answers.filter { $0.status == grpcStatus(.resourceExhausted) }
        #expect(refused.count >= 8, "\(answers)")
        #expect(
            refused.allSatisfy { $0.message?.contains("reattach, release and interrupt calls per second") == true },
            "\(refused)")
        let ordinary = g.call("Config", token: token, messages: [SparkMessages.request()])
        g.pump()
        #expect(g.recorder.streams[ordinary]?.status == grpcStatus(.ok))
    }
}
