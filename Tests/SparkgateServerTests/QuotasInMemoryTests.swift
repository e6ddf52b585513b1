import Foundation
import NIOHPACK
import NIOHTTP2
import SparkgateCore
import SparkgateFraming
import SparkgateObservability
import SparkgateServer
import SparkgateTestSupport
import Testing

/// Quotas the gateway keeps on its own ledger, in memory: sessions per user, operations held by made-up
/// reattaches, one session behind two spellings of its id. What a real client and a real Spark add to the same
/// limits (PySpark's cleanup calls on a refused session, a running job interrupted) stays in the integration
/// suite.
@Suite("Quotas in memory")
struct QuotasInMemoryTests {
    static let teams = """
        {one-op: {quotas: {max_concurrent_operations_per_session: 1}}, \
        two-sessions: {quotas: {max_sessions_per_user: 2}}, \
        team-cap: {quotas: {max_concurrent_operations_per_team: 2}}}
        """

    /// Answers ExecutePlan with one response and keeps the stream open (a running operation);
    /// ReattachExecute as Spark answers an operation it never had; everything else at once, OK.
    static let backend: ScriptedBackend.Script = { request in
        let session = request.messages.first.map { SparkMessages.routing($0).session ?? "" } ?? ""
        let head = ScriptedBackend.head()
        let response = ScriptedBackend.message(SparkMessages.response(session: session))
        if request.path.hasSuffix("/ExecutePlan") { return [head, response] }
        if request.path.hasSuffix("/ReattachExecute") {
            return [ScriptedBackend.sparkError(.internal, errorClass: "INVALID_HANDLE.OPERATION_NOT_FOUND")]
        }
        return [head, response, ScriptedBackend.trailers()]
    }

    static func gateway() async throws -> InMemoryGateway {
        try await InMemoryGateway(
            config: "admin: {allow_unauthenticated_reads: true}", teams: teams, backend: backend)
    }

    static func session() -> String { UUID().uuidString.lowercased() }

    static func operation() -> String { UUID().uuidString.lowercased() }

    /// The admin API's `/v1/sessions` entries for `user`.
    static func sessions(_ g: InMemoryGateway, user: String) async throws -> [[String: Any]] {
        let routes = AdminRoutes(runtime: g.runtime, reloader: Reloader(runtime: g.runtime, file: g.directory)) { [] }
        let answer = await routes.handle(
            AdminRequest(method: "GET", uri: "/v1/sessions?user=\(user)", authorization: nil, body: []))
        #expect(answer.status == 200)
        let json = try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]
        return try #require(json?["sessions"] as? [[String: Any]])
    }

    @Test("a user past max_sessions_per_user is RESOURCE_EXHAUSTED naming the limit; a released session frees its slot")
    func sessionsPerUser() async throws {
        let g = try await Self.gateway()
        let token = g.token(user: "carol", team: "two-sessions")
        let (a, b, c) = (Self.session(), Self.session(), Self.session())
        for id in [a, b] {
            let call = g.call("Config", token: token, messages: [SparkMessages.request(session: id)])
            g.pump()
            #expect(g.recorder.streams[call]?.status == grpcStatus(.ok))
        }
        let third = g.call("Config", token: token, messages: [SparkMessages.request(session: c)])
        g.pump()
        expectAnswer(
            g, third, .resourceExhausted, saying: "team two-sessions allows 2 sessions per user; carol has 2 open")
        #expect(g.connector.backend?.received.count == 2)  // the refused session never reached the engine

        let release = g.call("ReleaseSession", token: token, messages: [SparkMessages.request(session: a)])
        g.pump()
        #expect(g.recorder.streams[release]?.status == grpcStatus(.ok))
        let again = g.call("Config", token: token, messages: [SparkMessages.request(session: c)])
        g.pump()
        #expect(g.recorder.streams[again]?.status == grpcStatus(.ok))
        #expect(try await Self.sessions(g, user: "carol").count == 2)
    }

    @Test(
        "session ids differing only in case are one session: one backend session, one ledger entry, one operation limit"
    )
    func sessionIDsDifferingInCase() async throws {
        let g = try await Self.gateway()
        let token = g.token(user: "casey", team: "one-op")
        let id = Self.session()
        let upper = g.call(
            "ExecutePlan", token: token,
            messages: [SparkMessages.request(session: id.uppercased(), operation: Self.operation())])
        g.read(upper, bytes: 1 << 20)
        g.pump()
        #expect(g.recorder.streams[upper]?.status == nil)  // running
        let lower = g.call(
            "ExecutePlan", token: token, messages: [SparkMessages.request(session: id, operation: Self.operation())])
        g.pump()
        expectAnswer(g, lower, .resourceExhausted, saying: "allows 1 concurrent operation per session; 1 is running")
        // A call that needs no operation slot goes through under the other spelling, to the same backend session.
        let config = g.call("Config", token: token, messages: [SparkMessages.request(session: id)])
        g.pump()
        #expect(g.recorder.streams[config]?.status == grpcStatus(.ok))
        let backendSessions = Set(
            try #require(g.connector.backend).received.values.map { SparkMessages.routing($0.messages[0]).session })
        #expect(backendSessions.count == 1, "\(backendSessions)")
        // The client gets back the spelling it sent.
        #expect(SparkMessages.routing(g.recorder.streams[upper]?.messages.first ?? []).session == id.uppercased())
        #expect(try await Self.sessions(g, user: "casey").count == 1)
    }

    @Test(
        "reattaches to operations that never ran hold nothing: the team's whole operation allowance stays free for a teammate"
    )
    func madeUpReattaches() async throws {
        let g = try await Self.gateway()
        let mallory = g.token(user: "mallory", team: "team-cap")
        let session = Self.session()
        let first = g.call("Config", token: mallory, messages: [SparkMessages.request(session: session)])
        g.pump()
        #expect(g.recorder.streams[first]?.status == grpcStatus(.ok))
        for _ in 0..<6 {
            // ReattachExecuteRequest: session_id 1, user_context 2, operation_id 3.
            var reattach: [UInt8] = []
            WireEncoding.appendString(field: 1, session, to: &reattach)
            reattach += UserContextField.encode(user: "whoever")
            WireEncoding.appendString(field: 3, Self.operation(), to: &reattach)
            let id = g.call("ReattachExecute", token: mallory, messages: [reattach])
            g.read(id, bytes: 1 << 20)
            g.pump()
            let status = g.recorder.streams[id]?.status
            #expect(status != nil && status != grpcStatus(.ok), "\(status ?? "no status")")
        }
        let held = try await Self.sessions(g, user: "mallory").map { $0["active_operations"] as? Int }
        #expect(held == [0], "\(held)")

        // A teammate runs two operations at once, the team's whole allowance; a third is refused naming it.
        let bob = g.token(user: "bob", team: "team-cap")
        let bobSession = Self.session()
        var running: [HTTP2StreamID] = []
        for _ in 0..<2 {
            let id = g.call(
                "ExecutePlan", token: bob,
                messages: [SparkMessages.request(session: bobSession, operation: Self.operation())])
            g.read(id, bytes: 1 << 20)
            running.append(id)
        }
        g.pump()
        #expect(running.allSatisfy { g.recorder.streams[$0]?.status == nil && g.recorder.streams[$0]?.reset == nil })
        let third = g.call(
            "ExecutePlan", token: bob,
            messages: [SparkMessages.request(session: bobSession, operation: Self.operation())])
        g.pump()
        expectAnswer(
            g, third, .resourceExhausted, saying: "team team-cap allows 2 concurrent operations; 2 are running")
    }
}
