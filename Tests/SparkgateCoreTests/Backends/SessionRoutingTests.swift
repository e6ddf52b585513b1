import SparkgateCore
import Testing

@Suite("Session routing")
struct SessionRoutingTests {
    let a = HostPort(host: "10.0.0.5", port: 15002)
    let b = HostPort(host: "10.0.0.6", port: 15002)
    var endpoints: [HostPort] { [a, b] }

    func route(
        _ placement: SessionPlacement, recorded: Bool, healthy: Set<HostPort>? = nil, move: Bool = false,
        session: String = "s-1"
    ) -> Result<SessionRouting.Decision, SparkgateError> {
        let up = healthy ?? Set(endpoints)
        return SessionRouting.endpoint(
            endpoints, backend: "spark", backendSessionID: session, placement: placement, recorded: recorded,
            isHealthy: { up.contains($0) }, moveSessions: move)
    }

    @Test("a new session goes to its first healthy endpoint in rendezvous order, and that is recorded")
    func newSession() throws {
        let first = EndpointSelection.rank(endpoints, for: "s-1")[0]
        let decision = try route(SessionPlacement(), recorded: true).get()
        #expect(decision == SessionRouting.Decision(endpoint: first, record: .claim(SessionPlacement(endpoint: first))))
        let other = first == a ? b : a
        let down = try route(SessionPlacement(), recorded: true, healthy: [other]).get()
        #expect(down.endpoint == other)
        #expect(down.record == .claim(SessionPlacement(endpoint: other)))
    }

    @Test("a placed session goes where it lives, whatever the rendezvous order, and nothing is recorded again")
    func placedSession() throws {
        for session in (0..<20).map({ "s-\($0)" }) {
            for pinned in endpoints {
                let decision = try route(SessionPlacement(endpoint: pinned), recorded: true, session: session).get()
                #expect(decision == SessionRouting.Decision(endpoint: pinned, record: nil))
            }
        }
    }

    @Test("a placement known only on this replica (the shared state lost it) is recorded again as a claim")
    func reclaim() throws {
        let decision = try route(SessionPlacement(endpoint: b), recorded: false).get()
        #expect(decision == SessionRouting.Decision(endpoint: b, record: .claim(SessionPlacement(endpoint: b))))
    }

    @Test(
        "a session whose endpoint fails is refused, naming where it lives, unless sessions may move; a move is recorded"
    )
    func failedEndpoint() throws {
        guard case .failure(let error) = route(SessionPlacement(endpoint: a), recorded: true, healthy: [b]) else {
            Issue.record("a session was moved off its endpoint")
            return
        }
        #expect(error.code == .unavailable)
        #expect(error.message.contains("endpoint \(a), where this session lives, is failing its health checks"))
        let moved = try route(SessionPlacement(endpoint: a), recorded: true, healthy: [b], move: true).get()
        #expect(moved == SessionRouting.Decision(endpoint: b, record: .move(SessionPlacement(endpoint: b))))
    }

    @Test("one endpoint needs no record; no healthy endpoint is UNAVAILABLE naming them")
    func edges() throws {
        let single = SessionRouting.endpoint(
            [a], backend: "spark", backendSessionID: "s", placement: SessionPlacement(), recorded: true,
            isHealthy: { _ in false }, moveSessions: false)
        #expect(try single.get() == SessionRouting.Decision(endpoint: a))
        guard case .failure(let error) = route(SessionPlacement(), recorded: true, healthy: []) else {
            Issue.record("routed with no healthy endpoint")
            return
        }
        #expect(error.message.contains("has no healthy endpoint (\(a), \(b))"))
    }

    @Test("a placement on an endpoint no longer configured moves the session for good")
    func removedEndpoint() throws {
        let gone = HostPort(host: "10.0.0.9", port: 15002)
        let decision = try route(SessionPlacement(endpoint: gone), recorded: true).get()
        #expect(decision.record == .move(SessionPlacement(endpoint: decision.endpoint)))
    }
}
