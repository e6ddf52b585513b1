import Foundation
import Logging
import NIOCore
import NIOPosix
import SparkgateCore
import SparkgateRedis
import SparkgateSharedState
import SparkgateTestSupport
import SparkgateTransport
import Testing

/// Placement, releases, duplicate operations and what Redis loses, with two replicas on a real redis-server.
@Suite("Shared state across replicas and Redis losses", .serialized)
struct SharedStateRecoveryTests {
    let ann = UserKey(team: "red", user: "ann")
    let s1 = "00000000-0000-4000-8000-000000000001"
    let s2 = "00000000-0000-4000-8000-000000000002"

    var quotas: QuotaSettings {
        var q = QuotaSettings()
        q.requestsPerSecond = 0
        q.maxSessionsPerUser = 1
        q.maxConcurrentOperationsPerTeam = 1
        return q
    }

    struct Replicas {
        let redis: RedisTestServer
        let group: MultiThreadedEventLoopGroup
        let a: SharedState
        let b: SharedState
        var loop: any EventLoop { group.next() }

        func close() {
            a.client.shutdown()
            b.client.shutdown()
            group.shutdownGracefully { _ in }
            redis.stop()
        }
    }

    func replicas() throws -> Replicas? {
        guard RedisTestServer.available || RedisTestServer.required else { return nil }
        let redis = try RedisTestServer()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var settings = SharedStateSettings()
        settings.kind = .redis
        settings.redis.heartbeatSeconds = 1
        func replica() -> SharedState {
            let client = RedisClient(
                endpoints: RedisEndpoints(addresses: [("127.0.0.1", redis.port)], timeout: .seconds(2)),
                logger: Logger(label: "test"))
            return SharedState(
                client: client, settings: settings, ledger: LocalLedger(), group: group, logger: Logger(label: "test"),
                seal: RecordSeal(secret: Array(repeating: 7, count: 32))
            ) { _ in }
        }
        return Replicas(redis: redis, group: group, a: replica(), b: replica())
    }

    func call(_ method: SparkConnectMethod, _ session: String, op: String? = nil) -> CallAdmission {
        var c = CallAdmission(
            caller: ann, method: method, clientSessionID: session, backendSessionID: session, backend: "spark")
        c.operationID = op
        c.reattachable = true
        return c
    }

    func admit(
        _ replica: SharedState, _ c: CallAdmission, on loop: any EventLoop
    ) async throws -> Result<AdmissionGrant, QuotaOrPolicyRefusal> {
        try await replica.admit(c, quotas: quotas, rejectForeignSessions: true, now: WallClock.now(), on: loop).get()
    }

    @Test("a session's placement is recorded once and every replica's admission returns it; the first claim wins")
    func placement() async throws {
        guard let r = try replicas() else { return }
        defer { r.close() }
        let key = SessionKey(owner: ann, clientSessionID: s1)
        let e1 = SessionPlacement(endpoint: HostPort(host: "10.0.0.5", port: 15002))
        let e2 = SessionPlacement(endpoint: HostPort(host: "10.0.0.6", port: 15002))
        let first = try await admit(r.a, call(.config, s1), on: r.loop).get()
        #expect(first.placement.isEmpty)
        #expect(try await r.a.place(key, .claim(e2), sessionIdleSeconds: 60, on: r.loop).get() == e2)
        // Replica b chose by its own rank (or health): the recorded placement wins.
        let onB = try await admit(r.b, call(.config, s1), on: r.loop).get()
        #expect(onB.placement == e2 && onB.placementRecorded)
        #expect(try await r.b.place(key, .claim(e1), sessionIdleSeconds: 60, on: r.loop).get() == e2)
        #expect(r.b.ledger.withLock { $0.session(key)?.endpoint } == e2.endpoint)
        // A move replaces it; a release forgets it.
        #expect(try await r.b.place(key, .move(e1), sessionIdleSeconds: 60, on: r.loop).get() == e1)
        #expect(try await r.a.placement(of: key) == e1)
        r.a.ledger.withLock { _ = $0.sessionReleased(key, now: WallClock.now()) }
        _ = try await r.a.client.send("PING", on: r.loop).get()
        #expect(try await r.a.placement(of: key).isEmpty)
    }

    @Test("ReleaseSession through a replica that never held the session frees the user's slot for every replica")
    func releaseAnywhere() async throws {
        guard let r = try replicas() else { return }
        defer { r.close() }
        _ = try await admit(r.a, call(.config, s1), on: r.loop).get()
        guard case .failure(.quota) = try await admit(r.a, call(.config, s2), on: r.loop) else {
            Issue.record("a second session was admitted")
            return
        }
        // The release reaches b, which has no record of the session: the ledger still mirrors it.
        _ = try await admit(r.b, call(.releaseSession, s1), on: r.loop).get()
        var outcome = CallOutcome(summary: CallSummary(start: 0, method: "ReleaseSession", peer: "p"), code: .ok)
        outcome.admitted = AdmittedCall(
            session: SessionKey(owner: ann, clientSessionID: s1), method: .releaseSession, operation: nil,
            reattachable: false, releaseAll: false, releasedOperationID: nil)
        r.b.ledger.withLock { $0.callFinished(outcome, now: WallClock.now()) }
        _ = try await r.b.client.send("PING", on: r.loop).get()
        #expect((try? await admit(r.a, call(.config, s2), on: r.loop).get()) != nil)
    }

    @Test("an ExecutePlan reusing an operation id another replica runs is refused with ALREADY_EXISTS")
    func duplicateAcrossReplicas() async throws {
        guard let r = try replicas() else { return }
        defer { r.close() }
        _ = try await admit(r.a, call(.executePlan, s1, op: "op-1"), on: r.loop).get()
        guard case .failure(let refusal) = try await admit(r.b, call(.executePlan, s1, op: "op-1"), on: r.loop) else {
            Issue.record("the duplicate was admitted")
            return
        }
        #expect(refusal.error.code == .alreadyExists)
        // A ReattachExecute of it is fine.
        #expect((try? await admit(r.b, call(.reattachExecute, s1, op: "op-1"), on: r.loop).get()) != nil)
    }

    @Test(
        "Redis loses everything (FLUSHALL): at the next heartbeat each replica writes back what it holds, and the limits hold again"
    )
    func reassertAfterLoss() async throws {
        guard let r = try replicas() else { return }
        defer { r.close() }
        await r.a.heartbeat(now: WallClock.now())
        await r.b.heartbeat(now: WallClock.now())
        let key = SessionKey(owner: ann, clientSessionID: s1)
        _ = try await admit(r.a, call(.executePlan, s1, op: "op-1"), on: r.loop).get()
        let placed = SessionPlacement(endpoint: HostPort(host: "10.0.0.6", port: 15002))
        _ = try await r.a.place(key, .claim(placed), sessionIdleSeconds: 60, on: r.loop).get()

        _ = try await r.a.client.send("FLUSHALL", on: r.loop).get()
        // Until a heartbeat, Redis has nothing: a second session (and a second operation of the team) would pass.
        await r.b.heartbeat(now: WallClock.now())  // b holds nothing; it sees the new epoch
        await r.a.heartbeat(now: WallClock.now())  // a writes back its session, operation and placement
        guard case .failure(.quota(let q)) = try await admit(r.b, call(.executePlan, s2, op: "op-2"), on: r.loop) else {
            Issue.record("the limits did not hold after the write-back")
            return
        }
        #expect(q.limit == .sessionsPerUser)
        #expect(try await r.b.placement(of: key) == placed)
        let onB = try await admit(r.b, call(.reattachExecute, s1, op: "op-1"), on: r.loop).get()
        #expect(onB.placement == placed)
    }
}
