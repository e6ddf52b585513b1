import SparkgateCore
import Testing

@Suite("Endpoint health and selection")
struct EndpointHealthTests {
    let a = HostPort(host: "10.0.0.1", port: 15002)
    let b = HostPort(host: "10.0.0.2", port: 15002)
    let c = HostPort(host: "10.0.0.3", port: 15002)

    @Test(
        "unhealthy after N consecutive failures, healthy after M consecutive successes; a success resets the failures")
    func thresholds() {
        var s = HealthSettings()
        s.unhealthyAfter = 3
        s.healthyAfter = 2
        var h = EndpointHealth()
        #expect(h.record(ok: false, settings: s) == nil)
        #expect(h.record(ok: false, settings: s) == nil)
        #expect(h.record(ok: true, settings: s) == nil)  // resets
        #expect(h.record(ok: false, settings: s) == nil)
        #expect(h.record(ok: false, settings: s) == nil)
        #expect(h.record(ok: false, settings: s) == false)
        #expect(!h.healthy)
        #expect(h.record(ok: false, settings: s) == nil)
        #expect(h.record(ok: true, settings: s) == nil)
        #expect(h.record(ok: true, settings: s) == true)
        #expect(h.healthy)
    }

    @Test("a new session goes to the first healthy endpoint in its rendezvous order; a pinned one stays or is refused")
    func selection() throws {
        let all = [a, b, c]
        let id = "00000000-0000-4000-8000-000000000001"
        let ranked = EndpointSelection.rank(all, for: id)
        #expect(Set(ranked) == Set(all))
        #expect(EndpointSelection.rank(all.reversed(), for: id) == ranked)  // order of configuration does not matter
        let down: Set<HostPort> = [ranked[0]]
        let healthy = { (e: HostPort) in !down.contains(e) }
        #expect(
            try EndpointSelection.select(
                all, for: id, pinned: nil, isHealthy: healthy, moveSessions: false, backend: "spark"
            ).get() == ranked[1])
        #expect(
            try EndpointSelection.select(
                all, for: id, pinned: ranked[2], isHealthy: healthy, moveSessions: false, backend: "spark"
            ).get() == ranked[2])
        guard
            case .failure(let e) = EndpointSelection.select(
                all, for: id, pinned: ranked[0], isHealthy: healthy, moveSessions: false, backend: "spark")
        else {
            Issue.record("a session pinned to a failed endpoint was moved")
            return
        }
        #expect(e.code == .unavailable && e.message.contains("backend 'spark' endpoint \(ranked[0])"))
        #expect(
            try EndpointSelection.select(
                all, for: id, pinned: ranked[0], isHealthy: healthy, moveSessions: true, backend: "spark"
            ).get() == ranked[1])
        guard
            case .failure(let none) = EndpointSelection.select(
                all, for: id, pinned: nil, isHealthy: { _ in false }, moveSessions: true, backend: "spark")
        else {
            Issue.record("no healthy endpoint, yet one was chosen")
            return
        }
        #expect(none.message.contains("has no healthy endpoint"))
    }

    @Test("adding an endpoint moves only the sessions it wins")
    func rendezvousStability() {
        var moved = 0
        for i in 0..<1000 {
            let id = "session-\(i)"
            let before = EndpointSelection.rank([a, b], for: id)[0]
            let after = EndpointSelection.rank([a, b, c], for: id)[0]
            if after != before {
                #expect(after == c)
                moved += 1
            }
        }
        #expect(moved > 200 && moved < 460, "about a third should move to the new endpoint; \(moved) did")
    }
}
