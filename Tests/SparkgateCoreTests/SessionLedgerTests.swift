import SparkgateCore
import SparkgateTestSupport
import Testing

@Suite("Session ledger")
struct SessionLedgerTests {
    let alice = UserKey(team: "analytics", user: "alice")
    let bob = UserKey(team: "analytics", user: "bob")
    let s1 = "00000000-0000-4000-8000-000000000001"
    let s2 = "00000000-0000-4000-8000-000000000002"

    func call(
        _ who: UserKey, _ method: SparkConnectMethod, _ session: String, op: String? = nil, reattachable: Bool = true
    ) -> CallAdmission {
        var c = CallAdmission(
            caller: who, method: method, clientSessionID: session, backendSessionID: session, backend: "local")
        c.operationID = op
        c.reattachable = reattachable
        return c
    }

    var quotas: QuotaSettings {
        var q = QuotaSettings()
        q.requestsPerSecond = 0
        return q
    }

    @Test("a session id in use by another user is refused, and nothing is recorded for the intruder")
    func foreignSession() {
        var l = SessionLedger()
        #expect(
            (try? l.admit(call(alice, .config, s1), quotas: quotas, rejectForeignSessions: true, now: 0).get()) != nil)
        guard
            case .failure(.policy(let e)) = l.admit(
                call(bob, .config, s1), quotas: quotas, rejectForeignSessions: true, now: 1)
        else {
            Issue.record("bob was admitted to alice's session")
            return
        }
        #expect(e.code == .permissionDenied)
        #expect(e.message.contains("belongs to another user"))
        #expect(l.sessionCount(of: bob) == 0)
        // Without the check, bob gets a session of his own under the same id.
        #expect(
            (try? l.admit(call(bob, .config, s1), quotas: quotas, rejectForeignSessions: false, now: 2).get()) != nil)
        #expect(l.sessions.count == 2)
    }

    @Test("sessions per user: the limit counts live sessions, and a released one frees its slot")
    func sessionsPerUser() {
        var l = SessionLedger()
        var q = quotas
        q.maxSessionsPerUser = 2
        let s3 = "00000000-0000-4000-8000-000000000003"
        for s in [s1, s2] {
            #expect(
                (try? l.admit(call(alice, .config, s), quotas: q, rejectForeignSessions: true, now: 0).get()) != nil)
        }
        guard
            case .failure(.quota(let r)) = l.admit(
                call(alice, .config, s3), quotas: q, rejectForeignSessions: true, now: 0)
        else {
            Issue.record("third session admitted")
            return
        }
        #expect(r.limit == .sessionsPerUser)
        #expect(
            r.error.message
                == "team analytics allows 2 sessions per user; alice has 2 open. Stop one with spark.stop() or let it go idle"
        )
        // An existing session keeps working at the limit.
        #expect(
            (try? l.admit(call(alice, .analyzePlan, s1), quotas: q, rejectForeignSessions: true, now: 0).get()) != nil)
        l.sessionReleased(SessionKey(owner: alice, clientSessionID: s2), now: 0)
        #expect((try? l.admit(call(alice, .config, s3), quotas: q, rejectForeignSessions: true, now: 0).get()) != nil)
    }

    @Test("concurrent operations: a reattach of a held operation is never counted or refused as a new one")
    func operations() {
        var l = SessionLedger()
        var q = quotas
        q.maxConcurrentOperationsPerSession = 1
        let key = SessionKey(owner: alice, clientSessionID: s1)
        #expect(
            (try? l.admit(call(alice, .executePlan, s1, op: "op1"), quotas: q, rejectForeignSessions: true, now: 0)
                .get()) != nil)
        guard
            case .failure(.quota(let r)) = l.admit(
                call(alice, .executePlan, s1, op: "op2"), quotas: q, rejectForeignSessions: true, now: 0)
        else {
            Issue.record("second operation admitted")
            return
        }
        #expect(r.error.message == "team analytics allows 1 concurrent operation per session; 1 is running")
        // The stream is cut without result_complete: the operation lives on, detached.
        l.streamEnded(OperationKey(session: key, operationID: "op1"), .detached, now: 1)
        #expect(l.session(key)?.activeOperations == 1)
        #expect(
            (try? l.admit(call(alice, .reattachExecute, s1, op: "op1"), quotas: q, rejectForeignSessions: true, now: 2)
                .get()) != nil)
        #expect(l.session(key)?.activeOperations == 1)
        #expect(l.operation(OperationKey(session: key, operationID: "op1"))?.attachedStreams == 1)
        l.streamEnded(OperationKey(session: key, operationID: "op1"), .completed, now: 3)
        #expect(l.session(key)?.activeOperations == 0)
        #expect(l.activeOperations(team: "analytics") == 0)
        #expect(
            (try? l.admit(call(alice, .executePlan, s1, op: "op2"), quotas: q, rejectForeignSessions: true, now: 4)
                .get()) != nil)
    }

    @Test("team operations limit spans sessions and users")
    func teamOperations() {
        var l = SessionLedger()
        var q = quotas
        q.maxConcurrentOperationsPerTeam = 2
        #expect(
            (try? l.admit(call(alice, .executePlan, s1, op: "a"), quotas: q, rejectForeignSessions: true, now: 0).get())
                != nil)
        #expect(
            (try? l.admit(call(bob, .executePlan, s2, op: "b"), quotas: q, rejectForeignSessions: true, now: 0).get())
                != nil)
        guard
            case .failure(.quota(let r)) = l.admit(
                call(alice, .executePlan, s1, op: "c"), quotas: q, rejectForeignSessions: true, now: 0)
        else {
            Issue.record("admitted past the team limit")
            return
        }
        #expect(r.limit == .operationsPerTeam)
    }

    @Test("interrupt, release_all, failure and session release all give operations back")
    func endings() {
        var l = SessionLedger()
        let key = SessionKey(owner: alice, clientSessionID: s1)
        for op in ["a", "b", "c", "d"] {
            _ = l.admit(call(alice, .executePlan, s1, op: op), quotas: quotas, rejectForeignSessions: true, now: 0)
        }
        #expect(l.activeOperations(team: "analytics") == 4)
        l.operationsEnded(["a"], in: key)  // interrupted
        l.streamEnded(OperationKey(session: key, operationID: "b"), .failed, now: 1)  // backend error
        #expect(l.activeOperations(team: "analytics") == 2)
        l.sessionReleased(key, now: 0)  // release of a session with running operations
        #expect(l.activeOperations(team: "analytics") == 0)
        #expect(l.operations.isEmpty && l.sessions.isEmpty)
    }

    @Test("non-reattachable operations end with their stream, even when the client cancels")
    func nonReattachable() {
        #expect(
            StreamEnd.classify(reattachable: false, sawResultComplete: false, code: .cancelled, backendStatus: nil)
                == .failed)
        #expect(
            StreamEnd.classify(reattachable: true, sawResultComplete: false, code: .cancelled, backendStatus: nil)
                == .detached)
        #expect(
            StreamEnd.classify(reattachable: true, sawResultComplete: false, code: .ok, backendStatus: nil) == .detached
        )
        #expect(
            StreamEnd.classify(reattachable: true, sawResultComplete: true, code: .ok, backendStatus: nil) == .completed
        )
        let takenOver = BackendStatus(code: .internal, message: "anything", errorClass: "INVALID_CURSOR.DISCONNECTED")
        #expect(
            StreamEnd.classify(reattachable: true, sawResultComplete: false, code: .internal, backendStatus: takenOver)
                == .detached)
        let failed = BackendStatus(code: .internal, message: "[DIVIDE_BY_ZERO]", errorClass: "DIVIDE_BY_ZERO")
        #expect(
            StreamEnd.classify(reattachable: true, sawResultComplete: false, code: .internal, backendStatus: failed)
                == .failed)
        // The error class decides, not the text: a message that merely mentions INVALID_CURSOR is a failure.
        let echoed = BackendStatus(
            code: .internal, message: "[INVALID_CURSOR.DISCONNECTED] (from a user's raise_error)",
            errorClass: "USER_RAISED_EXCEPTION")
        #expect(
            StreamEnd.classify(reattachable: true, sawResultComplete: false, code: .internal, backendStatus: echoed)
                == .failed)
    }

    @Test("the sweep releases idle sessions, but never one with a running operation")
    func idle() {
        var l = SessionLedger()
        var q = quotas
        q.sessionIdleSeconds = 60
        _ = l.admit(call(alice, .config, s1), quotas: q, rejectForeignSessions: true, now: 0)
        l.callEnded(SessionKey(owner: alice, clientSessionID: s1), bytesIn: 10, bytesOut: 20, rowsOut: 0, now: 0)
        _ = l.admit(call(bob, .executePlan, s2, op: "long"), quotas: q, rejectForeignSessions: true, now: 0)
        l.callEnded(SessionKey(owner: bob, clientSessionID: s2), bytesIn: 0, bytesOut: 0, rowsOut: 0, now: 0)
        #expect(l.sweep(now: 59, detachedTimeout: 300) { _ in q }.idleSessions.isEmpty)
        let sweep = l.sweep(now: 61, detachedTimeout: 300) { _ in q }
        #expect(sweep.idleSessions.map(\.owner) == [alice])
        #expect(sweep.idleSessions.first?.bytesOut == 20)
        #expect(l.session(SessionKey(owner: bob, clientSessionID: s2)) != nil)
    }

    @Test("the sweep ends operations past max_operation_seconds, and abandoned ones")
    func overdueAndAbandoned() {
        var l = SessionLedger()
        var q = quotas
        q.maxOperationSeconds = 10
        let key = SessionKey(owner: alice, clientSessionID: s1)
        _ = l.admit(call(alice, .executePlan, s1, op: "slow"), quotas: q, rejectForeignSessions: true, now: 0)
        q.maxOperationSeconds = 0
        _ = l.admit(call(alice, .executePlan, s1, op: "lost"), quotas: q, rejectForeignSessions: true, now: 0)
        l.streamEnded(OperationKey(session: key, operationID: "lost"), .detached, now: 1)
        let s = l.sweep(now: 11, detachedTimeout: 300) { _ in q }
        #expect(s.overdueOperations.map(\.operationID) == ["slow"])
        let s2 = l.sweep(now: 302, detachedTimeout: 300) { _ in q }
        #expect(s2.abandonedOperations.map(\.operationID) == ["lost"])
        #expect(l.activeOperations(team: "analytics") == 0)
    }

    @Test("lowering a limit applies to new work only")
    func lowering() {
        var l = SessionLedger()
        var q = quotas
        q.maxResultBytesPerOperation = 1000
        let key = SessionKey(owner: alice, clientSessionID: s1)
        _ = l.admit(call(alice, .executePlan, s1, op: "op"), quotas: q, rejectForeignSessions: true, now: 0)
        q.maxResultBytesPerOperation = 10  // a reload lowers it
        _ = l.admit(call(alice, .reattachExecute, s1, op: "op"), quotas: q, rejectForeignSessions: true, now: 1)
        #expect(l.resultReceived(OperationKey(session: key, operationID: "op"), bytes: 500, rows: 1) == nil)
        let refusal = l.resultReceived(OperationKey(session: key, operationID: "op"), bytes: 501, rows: 1)
        #expect(refusal?.limit == .resultBytes)
        #expect(refusal?.error.message.hasPrefix("team analytics allows 1000 bytes of results per operation") == true)
    }

    @Test("artifact bytes accumulate per session and refuse the upload that would pass the limit")
    func artifacts() {
        var l = SessionLedger()
        let key = SessionKey(owner: alice, clientSessionID: s1)
        _ = l.admit(call(alice, .addArtifacts, s1), quotas: quotas, rejectForeignSessions: true, now: 0)
        #expect(l.artifactReceived(key, bytes: 600, limit: 1024) == nil)
        let r = l.artifactReceived(key, bytes: 600, limit: 1024)
        #expect(r?.limit == .artifactBytes)
        #expect(
            r?.error.message
                == "team analytics allows 1 KiB of artifacts per session; this session has uploaded 600 bytes and this upload adds 600 bytes"
        )
        #expect(l.artifactReceived(key, bytes: 424, limit: 1024) == nil)
    }

    @Test("the rate limit refuses with a retry delay, refills, and leaves housekeeping calls to their own bucket")
    func rate() {
        var l = SessionLedger()
        var q = quotas
        q.requestsPerSecond = 2
        q.requestBurst = 3
        for _ in 0..<3 {
            #expect(
                (try? l.admit(call(alice, .config, s1), quotas: q, rejectForeignSessions: true, now: 10).get()) != nil)
        }
        guard
            case .failure(.quota(let r)) = l.admit(
                call(alice, .config, s1), quotas: q, rejectForeignSessions: true, now: 10)
        else {
            Issue.record("burst exceeded without refusal")
            return
        }
        #expect(r.limit == .requestRate)
        #expect(r.error.retryAfter == .milliseconds(500))
        for _ in 0..<20 {
            #expect(
                (try? l.admit(
                    call(alice, .releaseExecute, s1, op: "x"), quotas: q, rejectForeignSessions: true, now: 10
                ).get()) != nil)
        }
        // per user
        #expect((try? l.admit(call(bob, .config, s2), quotas: q, rejectForeignSessions: true, now: 10).get()) != nil)
        // refilled
        #expect(
            (try? l.admit(call(alice, .config, s1), quotas: q, rejectForeignSessions: true, now: 10.5).get()) != nil)
    }

    @Test("thousands of interleaved events never leak a count", arguments: [1, 2, 3, 4, 5] as [UInt64])
    func randomized(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var l = SessionLedger()
        var q = quotas
        q.maxConcurrentOperationsPerSession = 3
        q.maxConcurrentOperationsPerTeam = 8
        q.maxSessionsPerUser = 4
        q.sessionIdleSeconds = 50
        q.maxOperationSeconds = 400
        let users = (0..<4).map { UserKey(team: $0 < 2 ? "a" : "b", user: "u\($0)") }
        let sessions = (0..<6).map { "00000000-0000-4000-8000-00000000000\($0)" }
        var now = 0.0
        var inFlight: [(SessionKey, OperationKey?)] = []
        for _ in 0..<5000 {
            now += Double(rng.next() % 3)
            let user = users[Int(rng.next() % UInt64(users.count))]
            let session = sessions[Int(rng.next() % UInt64(sessions.count))]
            let key = SessionKey(owner: user, clientSessionID: session)
            let op = "op\(rng.next() % 12)"
            switch rng.next() % 9 {
            case 0, 1:
                let reattach = rng.next() % 3 == 0
                if case .success = l.admit(
                    call(
                        user, reattach ? .reattachExecute : .executePlan, session, op: op,
                        reattachable: rng.next() % 2 == 0), quotas: q, rejectForeignSessions: rng.next() % 2 == 0,
                    now: now)
                {
                    inFlight.append((key, OperationKey(session: key, operationID: op)))
                }
            case 2:
                if case .success = l.admit(
                    call(user, .config, session), quotas: q, rejectForeignSessions: true, now: now)
                {
                    inFlight.append((key, nil))
                }
            case 3, 4:
                guard !inFlight.isEmpty else { break }
                let (k, o) = inFlight.remove(at: Int(rng.next() % UInt64(inFlight.count)))
                l.callEnded(k, bytesIn: 1, bytesOut: 1, rowsOut: 0, now: now)
                if let o {
                    let ends: [StreamEnd] = [.completed, .detached, .failed]
                    l.streamEnded(o, ends[Int(rng.next() % 3)], now: now)
                }
            case 5:
                l.operationsEnded([op], in: key)
            case 6:
                if rng.next() % 4 == 0 { l.sessionReleased(key, now: 0) }
            case 7:
                _ = l.sweep(now: now, detachedTimeout: 30) { _ in q }
            default:
                _ = l.resultReceived(OperationKey(session: key, operationID: op), bytes: 10, rows: 1)
            }
            // Invariants: incremental counts equal counts recomputed from the records.
            for team in ["a", "b"] {
                #expect(l.activeOperations(team: team) == l.operations.values.filter { $0.owner.team == team }.count)
                #expect(l.sessionCount(ofTeam: team) == l.sessions.values.filter { $0.owner.team == team }.count)
            }
            for u in users { #expect(l.sessionCount(of: u) == l.sessions.values.filter { $0.owner == u }.count) }
            for s in l.sessions.values {
                #expect(s.activeOperations == l.operations.values.filter { $0.key.session == s.key }.count)
            }
            #expect(l.operations.values.allSatisfy { l.sessions[$0.key.session] != nil })
        }
        // Once all calls end and time passes, nothing stays exhausted.
        for (k, o) in inFlight {
            l.callEnded(k, bytesIn: 0, bytesOut: 0, rowsOut: 0, now: now)
            if let o { l.streamEnded(o, .detached, now: now) }
        }
        _ = l.sweep(now: now + 1000, detachedTimeout: 30) { _ in q }
        #expect(l.operations.isEmpty)
        #expect(l.sessions.isEmpty)
        #expect(users.allSatisfy { l.sessionCount(of: $0) == 0 })
    }

    @Test(
        "a ReattachExecute for an operation the ledger does not hold counts like a new one, and ends when Spark has no such operation"
    )
    func unknownReattach() {
        var l = SessionLedger()
        var q = quotas
        q.maxConcurrentOperationsPerTeam = 2
        let key = SessionKey(owner: alice, clientSessionID: s1)
        for op in ["x1", "x2"] {
            #expect(
                (try? l.admit(call(alice, .reattachExecute, s1, op: op), quotas: q, rejectForeignSessions: true, now: 0)
                    .get()) != nil)
        }
        guard
            case .failure(.quota(let r)) = l.admit(
                call(alice, .reattachExecute, s1, op: "x3"), quotas: q, rejectForeignSessions: true, now: 0)
        else {
            Issue.record("a third made-up operation was admitted past the team limit")
            return
        }
        #expect(r.limit == .operationsPerTeam)
        // Spark answers OPERATION_NOT_FOUND: the operation ends at once instead of lingering as detached.
        var outcome = CallOutcome(summary: CallSummary(start: 0, method: "ReattachExecute", peer: "p"), code: .internal)
        outcome.backendStatus = BackendStatus(
            code: .internal, message: "whatever", errorClass: "INVALID_HANDLE.OPERATION_NOT_FOUND")
        outcome.admitted = AdmittedCall(
            session: key, method: .reattachExecute, operation: OperationKey(session: key, operationID: "x1"),
            reattachable: true, releaseAll: false, releasedOperationID: nil)
        l.callFinished(outcome, now: 1)
        #expect(l.activeOperations(team: "analytics") == 1)
        #expect(
            (try? l.admit(call(alice, .executePlan, s1, op: "real"), quotas: q, rejectForeignSessions: true, now: 2)
                .get()) != nil)
    }

    @Test("housekeeping calls have a generous bucket of their own")
    func housekeepingBucket() {
        var l = SessionLedger()
        var q = quotas
        q.housekeepingRequestsPerSecond = 100
        q.housekeepingRequestBurst = 5
        for _ in 0..<5 {
            #expect(
                (try? l.admit(call(alice, .releaseExecute, s1, op: "x"), quotas: q, rejectForeignSessions: true, now: 0)
                    .get()) != nil)
        }
        guard
            case .failure(.quota(let r)) = l.admit(
                call(alice, .releaseExecute, s1, op: "x"), quotas: q, rejectForeignSessions: true, now: 0)
        else {
            Issue.record("housekeeping burst exceeded without refusal")
            return
        }
        #expect(r.limit == .housekeepingRate)
        #expect(r.error.retryAfter == .milliseconds(10))
        // the other bucket
        #expect((try? l.admit(call(alice, .config, s1), quotas: q, rejectForeignSessions: true, now: 0).get()) != nil)
    }

    @Test(
        "a cleanup call on a session the ledger refused leaves no record, so the refusal cannot come back as a held slot"
    )
    func refusedSessionStaysRefused() {
        var l = SessionLedger()
        var q = quotas
        q.maxSessionsPerUser = 1
        #expect((try? l.admit(call(alice, .config, s1), quotas: q, rejectForeignSessions: true, now: 0).get()) != nil)
        guard
            case .failure = l.admit(
                call(alice, .executePlan, s2, op: "op-1"), quotas: q, rejectForeignSessions: true, now: 1)
        else {
            Issue.record("the second session was admitted")
            return
        }
        // PySpark's exit-time cleanup on the refused session: forwarded, but never recorded.
        for method: SparkConnectMethod in [.releaseExecute, .getStatus, .releaseSession] {
            #expect(
                (try? l.admit(call(alice, method, s2, op: "op-1"), quotas: q, rejectForeignSessions: true, now: 2).get())
                    == AdmissionGrant())
        }
        #expect(l.sessionCount(of: alice) == 1 && l.session(SessionKey(owner: alice, clientSessionID: s2)) == nil)
        // A reattach resumes real work: it is counted, and refused at the limit like a new session.
        guard
            case .failure(.quota(let r)) = l.admit(
                call(alice, .reattachExecute, s2, op: "op-1"), quotas: q, rejectForeignSessions: true, now: 3)
        else {
            Issue.record("a reattach took a session past the limit")
            return
        }
        #expect(r.limit == .sessionsPerUser && r.error.message.contains("allows 1 session per user"))
    }

    @Test("a ReleaseExecute on a session Sparkgate released is answered as done; other calls still reach the backend")
    func lateReleaseAfterRelease() throws {
        var l = SessionLedger()
        let key = SessionKey(owner: alice, clientSessionID: s1)
        _ = try l.admit(call(alice, .executePlan, s1, op: "op-1"), quotas: quotas, rejectForeignSessions: true, now: 0)
            .get()
        l.sessionReleased(key, now: 1)
        #expect(
            try l.admit(
                call(alice, .releaseExecute, s1, op: "op-1"), quotas: quotas, rejectForeignSessions: true, now: 2
            ).get().alreadyReleased)
        #expect(
            try !l.admit(
                call(bob, .releaseExecute, s1, op: "op-1"), quotas: quotas, rejectForeignSessions: false, now: 2
            ).get().alreadyReleased)
        #expect(l.session(key) == nil)
        // A ReleaseExecute racing the ReleaseSession that is on its way is done too.
        _ = try l.admit(call(alice, .config, s2), quotas: quotas, rejectForeignSessions: true, now: 3).get()
        _ = try l.admit(call(alice, .releaseSession, s2), quotas: quotas, rejectForeignSessions: true, now: 4).get()
        #expect(
            try l.admit(
                call(alice, .releaseExecute, s2, op: "op-2"), quotas: quotas, rejectForeignSessions: true, now: 4
            ).get().alreadyReleased)
        // The memory fades after ten minutes (the sweep prunes it).
        _ = l.sweep(now: 1 + SessionLedger.releasedSessionSeconds + 1, detachedTimeout: 300) { _ in quotas }
        #expect(
            try !l.admit(
                call(alice, .releaseExecute, s1, op: "op-1"), quotas: quotas, rejectForeignSessions: true, now: 700
            ).get().alreadyReleased)
    }
}
