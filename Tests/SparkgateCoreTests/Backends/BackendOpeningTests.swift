import SparkgateCore
import Testing

@Suite("Backend opening: where a call goes, what is recorded, what counts against health")
struct BackendOpeningTests {
    let a = HostPort(host: "10.0.0.5", port: 15002)
    let b = HostPort(host: "10.0.0.6", port: 15002)
    let session = SessionKey(owner: UserKey(team: "analytics", user: "alice"), clientSessionID: "s-1")

    func target(_ placement: SessionPlacement = SessionPlacement(), recorded: Bool = false) -> BackendTarget {
        BackendTarget(
            route: BackendRoute(backend: "spark", backendSessionID: "b-1"), session: session, placement: placement,
            placementRecorded: recorded, sessionIdleSeconds: 600)
    }

    func opening(
        endpoints: [HostPort], tls: Bool = false, launch: LaunchSettings? = nil, placement: SessionPlacement = .init(),
        recorded: Bool = false
    ) -> BackendOpening {
        var settings = SparkgateConfig.Backend(name: "spark", endpoints: endpoints, tls: tls, launch: launch)
        settings.connectTimeoutSeconds = 2
        let directory = BackendDirectory(backends: ["spark": settings], tokens: ["spark": "backend-token"])
        return BackendOpening(target: target(placement, recorded: recorded), backend: directory["spark"])
    }

    func record(_ change: SessionRouting.PlacementChange) -> BackendOpening.Step {
        .recordPlacement(PlacementRecord(session: session, change: change, sessionIdleSeconds: 600))
    }

    func stream(_ address: HostPort, token: String? = "backend-token", tls: Bool = false) -> BackendStreamRequest {
        BackendStreamRequest(backend: "spark", address: address, tls: tls, token: token, connectTimeoutSeconds: 2)
    }

    @Test("a backend nobody configured fails the call by name")
    func notConfigured() {
        var opening = BackendOpening(target: target(), backend: nil)
        #expect(opening.start() == .fail(.unavailable("backend 'spark' is not configured")))
    }

    @Test("one endpoint: no health read, no record; its failure counts against it and names it to the client")
    func oneEndpoint() {
        var opening = opening(endpoints: [a], tls: true)
        #expect(opening.start() == .openStream(stream(a, tls: true), alongside: nil))
        let (error, failure) = opening.streamFailed(reason: "connection refused")
        #expect(error.message == "backend 'spark' (10.0.0.5:15002) is unreachable: connection refused; retry shortly")
        #expect(error.code == .unavailable)
        #expect(failure?.endpoint == a && failure?.reason == "connection refused")
    }

    @Test("several endpoints: health is read, a new session's placement recorded, then the stream opens there")
    func newSessionIsRecorded() {
        var opening = opening(endpoints: [a, b])
        #expect(opening.start() == .readHealth(backend: "spark", endpoints: [a, b]))
        let first = EndpointSelection.rank([a, b], for: "b-1")[0]
        let other = first == a ? b : a
        // The first choice is unhealthy: the session goes to the other endpoint.
        #expect(opening.healthRead(unhealthy: [first]) == record(.claim(SessionPlacement(endpoint: other))))
        #expect(
            opening.placementRecorded(SessionPlacement(endpoint: other)) == .openStream(stream(other), alongside: nil))
    }

    @Test("another replica's earlier placement wins: the call goes there, without recording again")
    func placementRace() {
        var opening = opening(endpoints: [a, b])
        _ = opening.start()
        guard case .recordPlacement(let asked) = opening.healthRead(unhealthy: []) else {
            Issue.record("a new session's placement must be recorded")
            return
        }
        let theirs = asked.change.placement.endpoint == a ? b : a
        #expect(
            opening.placementRecorded(SessionPlacement(endpoint: theirs)) == .openStream(stream(theirs), alongside: nil)
        )
        #expect(opening.target.placementRecorded && opening.target.placement.endpoint == theirs)
    }

    @Test(
        "a placement that keeps changing under the call (a hostile or flapping Redis) is chased a bounded number of times"
    )
    func placementKeepsChanging() {
        var opening = opening(endpoints: [a, b])
        _ = opening.start()
        var step = opening.healthRead(unhealthy: [])
        var rounds = 0
        // An endpoint nobody configured: routing moves the session off it and records the move, every time.
        let unknown = SessionPlacement(endpoint: HostPort(host: "203.0.113.9", port: 15002))
        while case .recordPlacement = step {
            rounds += 1
            step = opening.placementRecorded(unknown)
        }
        #expect(rounds == 3)
        guard case .fail(let error) = step else {
            Issue.record("expected a refusal, got \(step)")
            return
        }
        #expect(error.code == .unavailable && error.message.contains("kept changing"))
    }

    @Test(
        "a launch pool: the share key's engine, its own token, no TLS, the claim alongside; its failure is not the endpoint's"
    )
    func launchedEngine() {
        var launch = LaunchSettings(command: ["engine"])
        launch.share = .user
        var opening = opening(endpoints: [], tls: true, launch: launch)
        #expect(
            opening.start()
                == .findEngine(
                    EngineRequest(
                        key: EngineShareKey(backend: "spark", team: "analytics", user: "alice"), settings: launch,
                        bound: nil)))
        let engine = ReadyEngine(id: "e-7", address: HostPort(host: "127.0.0.1", port: 20007), token: "engine-token")
        let claim = PlacementRecord(
            session: session, change: .claim(SessionPlacement(endpoint: engine.address, engine: "e-7")),
            sessionIdleSeconds: 600)
        #expect(
            opening.engineReady(engine) == .openStream(stream(engine.address, token: "engine-token"), alongside: claim))
        #expect(opening.streamFailed(reason: "refused").endpointFailure == nil)
        // A second engine is an answer nobody asked for.
        guard case .outOfOrder = opening.engineReady(engine) else {
            Issue.record("a second engine must be out of order")
            return
        }
    }

    @Test("a session already placed on the engine is not claimed again")
    func boundEngine() {
        var opening = opening(
            endpoints: [], launch: LaunchSettings(command: ["engine"]), placement: SessionPlacement(engine: "e-7"),
            recorded: true)
        guard case .findEngine(let request) = opening.start() else {
            Issue.record("a launch pool finds an engine")
            return
        }
        #expect(request.bound == "e-7")
        let engine = ReadyEngine(id: "e-7", address: HostPort(host: "127.0.0.1", port: 20007), token: "t")
        #expect(opening.engineReady(engine) == .openStream(stream(engine.address, token: "t"), alongside: nil))
    }

    @Test("answers nobody asked for are told apart from failures")
    func outOfOrder() {
        var opening = opening(endpoints: [a])
        _ = opening.start()
        guard case .outOfOrder = opening.healthRead(unhealthy: []) else {
            Issue.record("a health reading after the stream was decided is out of order")
            return
        }
        guard case .outOfOrder = opening.placementRecorded(SessionPlacement(endpoint: a)) else {
            Issue.record("a placement nobody asked to record is out of order")
            return
        }
    }
}
