import SparkgateCore
import Testing

@Suite("Session lifetime (max_session_seconds)")
struct SessionLifetimeTests {
    let alice = UserKey(team: "analytics", user: "alice")
    let s1 = "00000000-0000-4000-8000-000000000001"

    func call(_ method: SparkConnectMethod, op: String? = nil) -> CallAdmission {
        var c = CallAdmission(
            caller: alice, method: method, clientSessionID: s1, backendSessionID: s1, backend: "local")
        c.operationID = op
        return c
    }

    func quotas(_ lifetime: Double) -> QuotaSettings {
        var q = QuotaSettings()
        q.requestsPerSecond = 0
        q.maxSessionSeconds = lifetime
        return q
    }

    @Test(
        "a session busy past its lifetime is released by the sweep with its operations; its next call is told the limit and its age"
    )
    func expires() throws {
        var l = SessionLedger()
        let q = quotas(60)
        _ = try l.admit(call(.config), quotas: q, rejectForeignSessions: true, now: 0).get()
        _ = try l.admit(call(.executePlan, op: "op-1"), quotas: q, rejectForeignSessions: true, now: 10).get()
        #expect(l.sweep(now: 59, detachedTimeout: 300) { _ in q }.expiredSessions.isEmpty)
        // Past the lifetime, a call is refused at once, before the sweep releases the session.
        guard case .failure(let refusal) = l.admit(call(.config), quotas: q, rejectForeignSessions: true, now: 61)
        else {
            Issue.record("admitted past its lifetime")
            return
        }
        #expect(refusal.error.code == .failedPrecondition)
        #expect(refusal.error.message.contains("max_session_seconds (60 s) at an age of 61 s"))
        let swept = l.sweep(now: 61, detachedTimeout: 300) { _ in q }
        #expect(swept.expiredSessions.map(\.clientSessionID) == [s1])
        #expect(l.sessions.isEmpty && l.operations.isEmpty)
        // The next call under the same id is told why, not given a fresh session; a release still passes.
        guard case .failure(let again) = l.admit(call(.analyzePlan), quotas: q, rejectForeignSessions: true, now: 120)
        else {
            Issue.record("a new session under an expired id")
            return
        }
        #expect(again.error.message.contains("was released; start a new session"))
        #expect((try? l.admit(call(.releaseSession), quotas: q, rejectForeignSessions: true, now: 121).get()) != nil)
        // After the tombstone's time, the id may start over.
        _ = l.sweep(now: 61 + SessionLedger.expiredSessionSeconds + 1, detachedTimeout: 300) { _ in q }
        #expect(
            (try? l.admit(
                call(.config), quotas: q, rejectForeignSessions: true, now: 61 + SessionLedger.expiredSessionSeconds + 2
            ).get()) != nil)
    }

    @Test("no lifetime (0) never expires a session; a lifetime is fixed when the session starts")
    func fixedAtStart() throws {
        var l = SessionLedger()
        _ = try l.admit(call(.config), quotas: quotas(0), rejectForeignSessions: true, now: 0).get()
        // A later configuration with a lifetime applies to new sessions only.
        _ = try l.admit(call(.config), quotas: quotas(5), rejectForeignSessions: true, now: 100).get()
        #expect(l.sweep(now: 3_000, detachedTimeout: 1e9) { _ in quotas(5) }.expiredSessions.isEmpty)
        #expect(l.sessions.count == 1)
    }
}
