import SparkgateCore
import Testing

@Suite("Shared state keys and replies")
struct SharedKeysTests {
    let keys = SharedKeys(prefix: "sg:")

    @Test("names that differ give different keys, however they are chosen")
    func injective() {
        let a = UserKey(team: "a:1", user: "b")
        let b = UserKey(team: "a", user: "1:b")
        #expect(keys.sessions(a) != keys.sessions(b))
        #expect(keys.member(a) != keys.member(b))
        let s1 = SessionKey(owner: UserKey(team: "t", user: "u1"), clientSessionID: "x")
        let s2 = SessionKey(owner: UserKey(team: "t", user: "u"), clientSessionID: "1x")
        #expect(keys.operations(s1) != keys.operations(s2))
    }

    @Test("members and kill messages decode to what was encoded, and nothing else decodes")
    func roundTrip() {
        for user in [UserKey(team: "t", user: "ü:ser"), UserKey(team: "", user: "x"), UserKey(team: "12:3", user: "")] {
            #expect(SharedKeys.user(fromMember: keys.member(user)) == user)
            let session = SessionKey(owner: user, clientSessionID: "00000000-0000-4000-8000-000000000001")
            #expect(SharedKeys.session(fromKillMessage: keys.killMessage(session)) == session)
            for kind in [
                SharedEvent.Kind.sessionReleased(session),
                .operationEnded(OperationKey(session: session, operationID: "o:1")),
            ] {
                let event = SharedEvent(origin: "r:1", kind: kind)
                #expect(SharedEvent(message: event.message) == event)
            }
        }
        for junk in ["", "1:rx", "1:rs1:t1:u", "1:ro1:t1:u1:s", "1:rs1:t1:u1:sjunk", "1:rq1:t1:u1:s"] {
            #expect(SharedEvent(message: junk) == nil, "\(junk)")
        }
        for junk in ["", "5:ab", "1:a1:b1:c", "x:a1:b", "-1:a0:", "2:ab1:cz"] {
            #expect(SharedKeys.user(fromMember: junk) == nil, "\(junk)")
        }
    }

    @Test("script replies map to the ledger's own refusals; anything else is not a verdict")
    func verdicts() {
        let call = CallAdmission(
            caller: UserKey(team: "t", user: "u"), method: .config, clientSessionID: "s", backendSessionID: "s",
            backend: "b")
        let q = QuotaSettings()
        #expect(
            SharedAdmission.verdict(["ok", "1", "0", "", "", ""], call: call, quotas: q)
                == .admitted(newSession: true, newOperation: false, placement: SessionPlacement(), placementSeal: ""))
        #expect(
            SharedAdmission.verdict(["ok", "0", "1", "10.0.0.5:15002", "e-1", "ab12"], call: call, quotas: q)
                == .admitted(
                    newSession: false, newOperation: true,
                    placement: SessionPlacement(endpoint: HostPort(host: "10.0.0.5", port: 15002), engine: "e-1"),
                    placementSeal: "ab12"))
        #expect(SharedAdmission.verdict(["ok", "0", "1", "10.0.0.5:15002", "e-1"], call: call, quotas: q) == nil)
        #expect(SharedAdmission.verdict(["op_exists"], call: call, quotas: q) == .refused(.operationExists("")))
        #expect(SharedAdmission.verdict(["pass"], call: call, quotas: q) == .passed)
        #expect(SharedAdmission.verdict(["foreign"], call: call, quotas: q) == .refused(.foreignSession("s")))
        #expect(
            SharedAdmission.verdict(["sessions", "8"], call: call, quotas: q)
                == .refused(.quota(.sessionsPerUser(team: "t", quotas: q, user: "u", open: 8))))
        #expect(
            SharedAdmission.verdict(["rate", "0.25"], call: call, quotas: q)
                == .refused(.quota(.requestRate(team: "t", quotas: q, wait: 0.25))))
        for junk in [[], ["ok"], ["ok", "1", "0"], ["rate"], ["rate", "x"], ["sessions"], ["what"]] {
            #expect(SharedAdmission.verdict(junk, call: call, quotas: q) == nil, "\(junk)")
        }
    }

    @Test("numbers go to Lua as text that reads back to the same double")
    func exactNumbers() {
        for v in [0.1, 1_000_000.123456789, 1e-7, 3.0, 1.0 / 3.0, 1_764_000_000.000_001] {
            #expect(Double(SharedAdmission.number(v)) == v)
        }
    }
}
