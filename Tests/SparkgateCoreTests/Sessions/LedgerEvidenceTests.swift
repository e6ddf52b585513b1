import SparkgateCore
import Testing

/// The ledger ends an operation only on that operation's own evidence, and a release reaches every replica.
@Suite("Session ledger: what ends an operation or a session")
struct LedgerEvidenceTests {
    let alice = UserKey(team: "analytics", user: "alice")
    let s1 = "00000000-0000-4000-8000-000000000001"

    func call(_ method: SparkConnectMethod, op: String? = nil) -> CallAdmission {
        var c = CallAdmission(
            caller: alice, method: method, clientSessionID: s1, backendSessionID: s1, backend: "local")
        c.operationID = op
        c.reattachable = true
        return c
    }

    var quotas: QuotaSettings {
        var q = QuotaSettings()
        q.requestsPerSecond = 0
        q.maxConcurrentOperationsPerSession = 1
        return q
    }

    @Test(
        "an ExecutePlan that reuses a running operation's id is refused with ALREADY_EXISTS, and the running operation is untouched"
    )
    func duplicateExecute() {
        var l = SessionLedger()
        let key = SessionKey(owner: alice, clientSessionID: s1)
        let op = OperationKey(session: key, operationID: "op1")
        #expect(
            (try? l.admit(call(.executePlan, op: "op1"), quotas: quotas, rejectForeignSessions: true, now: 0).get())
                != nil)
        guard
            case .failure(let refusal) = l.admit(
                call(.executePlan, op: "op1"), quotas: quotas, rejectForeignSessions: true, now: 1)
        else {
            Issue.record("a second ExecutePlan with a running id was admitted")
            return
        }
        #expect(refusal.error.code == .alreadyExists)
        #expect(
            refusal.error.message
                == "operation op1 is already running in this session; give a new ExecutePlan its own operation_id, or resume this one with ReattachExecute"
        )
        #expect(CallRefusal.ledger(refusal).reason == "operation_exists")
        #expect(l.session(key)?.activeOperations == 1)
        #expect(l.operation(op)?.attachedStreams == 1)
        // Detached, it still runs: a new ExecutePlan still cannot take it over, a ReattachExecute can.
        l.streamEnded(op, .detached, now: 2)
        #expect(throws: QuotaOrPolicyRefusal.self) {
            try l.admit(call(.executePlan, op: "op1"), quotas: quotas, rejectForeignSessions: true, now: 3).get()
        }
        #expect(
            (try? l.admit(call(.reattachExecute, op: "op1"), quotas: quotas, rejectForeignSessions: true, now: 4).get())
                != nil)
        // Ended, its id is free again.
        l.streamEnded(op, .completed, now: 5)
        #expect(
            (try? l.admit(call(.executePlan, op: "op1"), quotas: quotas, rejectForeignSessions: true, now: 6).get())
                != nil)
    }

    @Test("the stream of a released operation, ending late, does not end a new operation that reuses its id")
    func lateStreamOfAnEarlierStart() throws {
        var l = SessionLedger()
        let key = SessionKey(owner: alice, clientSessionID: s1)
        let op = OperationKey(session: key, operationID: "op1")
        let first = try l.admit(call(.executePlan, op: "op1"), quotas: quotas, rejectForeignSessions: true, now: 0)
            .get()
        l.operationsEnded(["op1"], in: key)  // released (release_all) while its stream is still open
        let second = try l.admit(call(.executePlan, op: "op1"), quotas: quotas, rejectForeignSessions: true, now: 1)
            .get()
        #expect(first.operationInstance != second.operationInstance)
        // The first stream now ends with an error: it speaks for the first start only.
        var late = AdmittedCall(
            session: key, method: .executePlan, operation: op, reattachable: false, releaseAll: false,
            releasedOperationID: nil)
        late.operationInstance = first.operationInstance
        var outcome = CallOutcome(summary: CallSummary(start: 0, method: "ExecutePlan", peer: "p"), code: .cancelled)
        outcome.admitted = late
        l.callFinished(outcome, now: 2)
        #expect(l.operation(op)?.instance == second.operationInstance)
        #expect(l.session(key)?.activeOperations == 1)
    }

    @Test(
        "a release this replica never held a record of is still mirrored, so the replicas that did hold the session free its slot"
    )
    func releaseWithoutLocalRecord() {
        var l = SessionLedger()
        l.recordsChanges = true
        let key = SessionKey(owner: alice, clientSessionID: s1)
        // A ReleaseSession on a session opened on other replicas: the ledger passes it without a record.
        #expect(
            (try? l.admit(call(.releaseSession), quotas: quotas, rejectForeignSessions: true, now: 0, enforce: false)
                .get()) != nil)
        #expect(l.session(key) == nil)
        var admitted = AdmittedCall(
            session: key, method: .releaseSession, operation: nil, reattachable: false, releaseAll: false,
            releasedOperationID: nil)
        admitted.sawResultComplete = false
        var outcome = CallOutcome(summary: CallSummary(start: 0, method: "ReleaseSession", peer: "p"), code: .ok)
        outcome.admitted = admitted
        l.callFinished(outcome, now: 1)
        #expect(l.takeChanges() == [.sessionReleased(key)])
        // A late ReleaseExecute on it is answered as done.
        #expect(
            (try? l.admit(call(.releaseExecute, op: "op1"), quotas: quotas, rejectForeignSessions: true, now: 2).get())?
                .alreadyReleased == true)
    }

    @Test("what another replica released or ended is forgotten here without being mirrored back")
    func forgottenElsewhere() {
        var l = SessionLedger()
        l.recordsChanges = true
        let key = SessionKey(owner: alice, clientSessionID: s1)
        let op = OperationKey(session: key, operationID: "op1")
        #expect(
            (try? l.admit(call(.executePlan, op: "op1"), quotas: quotas, rejectForeignSessions: true, now: 0).get())
                != nil)
        l.operationEndedElsewhere(op)
        #expect(l.session(key)?.activeOperations == 0)
        #expect(l.activeOperations(team: "analytics") == 0)
        l.sessionReleasedElsewhere(key, now: 1)
        #expect(l.session(key) == nil)
        #expect(l.sessionCount(of: alice) == 0)
        #expect(l.takeChanges().isEmpty)
    }

    @Test("the admission grant carries where the session lives")
    func grantCarriesPlacement() {
        var l = SessionLedger()
        let key = SessionKey(owner: alice, clientSessionID: s1)
        #expect(
            (try? l.admit(call(.config), quotas: quotas, rejectForeignSessions: true, now: 0).get())?.placement
                == SessionPlacement())
        let placed = SessionPlacement(endpoint: HostPort(host: "10.0.0.6", port: 15002))
        l.place(key, placed)
        let grant = try? l.admit(call(.config), quotas: quotas, rejectForeignSessions: true, now: 1).get()
        #expect(grant?.placement == placed)
        #expect(grant?.placementRecorded == true)
        #expect(l.session(key)?.endpoint == placed.endpoint)
    }
}
