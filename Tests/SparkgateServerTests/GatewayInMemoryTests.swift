import NIOCore
import NIOHPACK
import NIOHTTP2
import SparkgateCore
import SparkgateEngines
import SparkgateServer
import SparkgateSharedState
import SparkgateTestSupport
import SparkgateTransport
import Testing

/// The NIO layer with every byte in memory: a real HTTP/2 client, the gateway's pipeline, scripted backends.
@Suite("Gateway in memory")
struct GatewayInMemoryTests {
    /// Answers every request with one response echoing the backend session id, then OK.
    static let echo: ScriptedBackend.Script = { request in
        let session = request.messages.first.map { SparkMessages.routing($0).session ?? "" } ?? ""
        return [
            ScriptedBackend.head(), ScriptedBackend.message(SparkMessages.response(session: session)),
            ScriptedBackend.trailers(),
        ]
    }

    @Test(
        "a unary call reaches the backend as the verified user under a namespaced session, and comes back under the client's id"
    )
    func unaryRoundTrip() async throws {
        let g = try await InMemoryGateway(backend: Self.echo)
        let id = g.call(
            "Config", token: g.token(user: "alice"), messages: [SparkMessages.request(claimedUser: "mallory")])
        g.pump()
        let seen = try #require(g.connector.backend?.received.values.first)
        let (session, user) = SparkMessages.routing(seen.messages[0])
        #expect(user == "alice")
        #expect(session != SparkMessages.sessionID && session?.count == 36)
        #expect(seen.headers.first(name: "authorization") == nil)  // no backend token configured; never the client's
        let answer = try #require(g.recorder.streams[id])
        #expect(answer.status == "0")
        #expect(SparkMessages.routing(answer.messages[0]).session == SparkMessages.sessionID)
    }

    @Test(
        "a token under authentication (Spark's JVM client 4.0.0-4.0.4, 4.1.0-4.1.3) is checked as authorization and never forwarded"
    )
    func authenticationHeader() async throws {
        let g = try await InMemoryGateway(backend: Self.echo)
        let id = g.call(
            "Config", token: g.token(user: "alice"), messages: [SparkMessages.request()], tokenHeader: "authentication")
        g.pump()
        let seen = try #require(g.connector.backend?.received.values.first)
        #expect(SparkMessages.routing(seen.messages[0]).user == "alice")
        #expect(seen.headers.first(name: "authentication") == nil && seen.headers.first(name: "authorization") == nil)
        #expect(g.recorder.streams[id]?.status == "0")
        // Both headers with different tokens: refused, and nothing reaches the backend.
        let both = g.call(
            "Config", token: g.token(user: "alice"), messages: [SparkMessages.request()],
            extraHeaders: [("authentication", "Bearer \(g.token(user: "bob"))")])
        g.pump()
        #expect(g.recorder.streams[both]?.status == "16")
        #expect(
            g.recorder.streams[both]?.message?.contains(
                "authorization and authentication headers carry different tokens") == true)
        #expect(g.connector.backend?.received.count == 1)
    }

    @Test("a first message of 2 MiB, twice the stream window, completes: window flows while it is read")
    func largeFirstMessage() async throws {
        let g = try await InMemoryGateway(backend: Self.echo)
        let big = SparkMessages.request(padding: 2 << 20)
        let id = g.call("Config", messages: [big])
        g.pump()
        let seen = try #require(g.connector.backend?.received.values.first)
        #expect(seen.messages.count == 1)
        #expect(seen.messages[0].count >= 2 << 20)
        #expect(g.recorder.streams[id]?.status == "0")
    }

    @Test("a client that stops reading holds the backend back to about two windows; when it reads, everything arrives")
    func slowReader() async throws {
        let batches = 2000
        let g = try await InMemoryGateway(backend: { request in
            let session = SparkMessages.routing(request.messages[0]).session ?? ""
            var frames = [ScriptedBackend.head()]
            for _ in 0..<batches {
                frames.append(
                    ScriptedBackend.message(SparkMessages.response(session: session, arrowBytes: 9000, rows: 100)))
            }
            frames.append(ScriptedBackend.message(SparkMessages.response(session: session, resultComplete: true)))
            frames.append(ScriptedBackend.trailers())
            return frames
        })
        let id = g.call("ExecutePlan", messages: [SparkMessages.request(operation: SparkMessages.operationID)])
        g.pump()
        let early = g.recorder.streams[id]
        #expect(early?.data.readableBytes ?? 0 <= 65_535)
        #expect(early?.ended == false)
        // The whole result is ~18 MB; the gateway took at most its window to the backend plus what it may
        // hold toward the client (a window and a watermark).
        #expect(
            g.bytesFromBackends < 3 << 20,
            "the gateway took \(g.bytesFromBackends) bytes from the backend for a client that read 64 KiB")
        print(
            "slow reader: the gateway took \(g.bytesFromBackends) bytes from the backend while the client read \(early?.data.readableBytes ?? 0)"
        )
        g.read(id, bytes: 64 << 20)
        g.pump()
        let done = try #require(g.recorder.streams[id])
        #expect(done.messages.count == batches + 1)
        #expect(done.status == "0")
    }

    @Test(
        "a client's grpc-timeout ends its call with DEADLINE_EXCEEDED and resets the backend stream; calls that finish in time never hear of theirs"
    )
    func deadlines() async throws {
        // The backend answers Config at once and never answers ExecutePlan.
        let g = try await InMemoryGateway(backend: { request in
            request.path.hasSuffix("/Config") ? Self.echo(request) : []
        })
        let quick = (0..<3).map { _ in
            g.call("Config", messages: [SparkMessages.request()], extraHeaders: [("grpc-timeout", "200m")])
        }
        let stuck = g.call(
            "ExecutePlan", messages: [SparkMessages.request(operation: SparkMessages.operationID)],
            extraHeaders: [("grpc-timeout", "100m")])
        g.pump()
        #expect(quick.allSatisfy { g.recorder.streams[$0]?.status == "0" })
        #expect(g.recorder.streams[stuck]?.status == nil)
        g.loop.advanceTime(by: .milliseconds(99))
        g.pump()
        #expect(g.recorder.streams[stuck]?.status == nil)
        g.loop.advanceTime(by: .milliseconds(2))
        g.pump()
        #expect(g.recorder.streams[stuck]?.status == String(GRPCStatusCode.deadlineExceeded.rawValue))
        #expect(g.connector.backend?.resets.isEmpty == false)
        // The finished calls' deadlines pass later without a word to anyone.
        g.loop.advanceTime(by: .seconds(1))
        g.pump()
        #expect(quick.allSatisfy { g.recorder.streams[$0]?.status == "0" })
    }

    @Test("the backend refusing the stream is UNAVAILABLE; resetting it mid-response says so")
    func backendResets() async throws {
        let g = try await InMemoryGateway(backend: { _ in [.rstStream(.refusedStream)] })
        let id = g.call("Config", messages: [SparkMessages.request()])
        g.pump()
        #expect(g.recorder.streams[id]?.status == String(GRPCStatusCode.unavailable.rawValue))
        #expect(g.recorder.streams[id]?.message?.contains("refused the stream") == true)

        let m = try await InMemoryGateway(backend: { request in
            [
                ScriptedBackend.head(),
                ScriptedBackend.message(
                    SparkMessages.response(session: SparkMessages.routing(request.messages[0]).session ?? "")),
            ]
        })
        let s = m.call("ExecutePlan", messages: [SparkMessages.request(operation: SparkMessages.operationID)])
        m.pump()
        let backendStream = try #require(m.connector.backend?.received.keys.first)
        m.connector.backend?.send(.rstStream(.internalError), on: backendStream)
        m.pump()
        let answer = try #require(m.recorder.streams[s])
        #expect(answer.messages.count == 1)
        #expect(answer.status == String(GRPCStatusCode.internal.rawValue))
        #expect(answer.message?.contains("reset the stream") == true)
    }

    @Test("a backend connection lost mid-stream is UNAVAILABLE; a GOAWAY that drops the stream too")
    func backendGoesAway() async throws {
        let script: ScriptedBackend.Script = { request in
            [
                ScriptedBackend.head(),
                ScriptedBackend.message(
                    SparkMessages.response(session: SparkMessages.routing(request.messages[0]).session ?? "")),
            ]
        }
        let g = try await InMemoryGateway(backend: script)
        let id = g.call("ExecutePlan", messages: [SparkMessages.request(operation: SparkMessages.operationID)])
        g.pump()
        try await g.connector.pairs[0].gateway.close()
        g.pump()
        #expect(g.recorder.streams[id]?.status == String(GRPCStatusCode.unavailable.rawValue))
        #expect(g.recorder.streams[id]?.message?.contains("lost the connection") == true)

        let h = try await InMemoryGateway(backend: script)
        let s = h.call("ExecutePlan", messages: [SparkMessages.request(operation: SparkMessages.operationID)])
        h.pump()
        h.connector.backend?.send(
            .goAway(lastStreamID: .rootStream, errorCode: .noError, opaqueData: nil), on: .rootStream)
        h.pump()
        #expect(h.recorder.streams[s]?.status == String(GRPCStatusCode.unavailable.rawValue))
    }

    @Test("the client resetting a streaming call resets the backend stream")
    func clientReset() async throws {
        let g = try await InMemoryGateway(backend: { request in
            [
                ScriptedBackend.head(),
                ScriptedBackend.message(
                    SparkMessages.response(session: SparkMessages.routing(request.messages[0]).session ?? "")),
            ]
        })
        let id = g.call("ExecutePlan", messages: [SparkMessages.request(operation: SparkMessages.operationID)])
        g.pump()
        g.reset(id)
        g.pump()
        let backendStream = try #require(g.connector.backend?.received.keys.first)
        #expect(g.connector.backend?.resets[backendStream] == .cancel)
    }

    @Test("HEADERS with END_STREAM and no message gets INVALID_ARGUMENT at once, and nothing reaches the backend")
    func noMessage() async throws {
        let g = try await InMemoryGateway(backend: Self.echo)
        let id = g.call("Config", messages: [])
        g.pump()
        #expect(g.recorder.streams[id]?.status == String(GRPCStatusCode.invalidArgument.rawValue))
        #expect(g.connector.pairs.isEmpty)
    }

    @Test("a bad token is UNAUTHENTICATED with its reason, and nothing reaches the backend")
    func badToken() async throws {
        let g = try await InMemoryGateway(backend: Self.echo)
        let id = g.call("Config", token: "not.a.jwt", messages: [SparkMessages.request()])
        g.pump()
        #expect(g.recorder.streams[id]?.status == String(GRPCStatusCode.unauthenticated.rawValue))
        #expect(g.connector.pairs.isEmpty)
    }

    @Test("drain: a running operation finishes, a new one is refused, then GOAWAY")
    func drain() async throws {
        var pending: [HTTP2StreamID] = []
        let g = try await InMemoryGateway(backend: { request in
            [
                ScriptedBackend.head(),
                ScriptedBackend.message(
                    SparkMessages.response(session: SparkMessages.routing(request.messages[0]).session ?? "")),
            ]
        })
        let running = g.call("ExecutePlan", messages: [SparkMessages.request(operation: SparkMessages.operationID)])
        g.pump()
        pending = Array(g.connector.backend!.received.keys)
        g.frontend.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        g.pump()
        let refused = g.call(
            "ExecutePlan", messages: [SparkMessages.request(operation: "00000000-0000-4000-8000-0000000000bb")])
        g.pump()
        #expect(g.recorder.streams[refused]?.status == String(GRPCStatusCode.unavailable.rawValue))
        #expect(g.recorder.goAway == nil)
        let session = SparkMessages.routing(g.connector.backend!.received[pending[0]]!.messages[0]).session ?? ""
        g.connector.backend?.send(
            ScriptedBackend.message(SparkMessages.response(session: session, resultComplete: true)), on: pending[0])
        g.connector.backend?.send(ScriptedBackend.trailers(), on: pending[0])
        g.pump()
        #expect(g.recorder.streams[running]?.status == "0")
        g.loop.advanceTime(by: .seconds(1))
        g.pump()
        #expect(g.recorder.goAway != nil)
    }
}
