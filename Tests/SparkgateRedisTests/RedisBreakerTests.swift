import SparkgateRedis
import Testing

@Suite("Redis breaker and Sentinel announcements")
struct RedisBreakerTests {
    @Test("the first connection failure opens it and schedules one probe; commands fail fast until a probe succeeds")
    func breaker() {
        var b = RedisBreaker()
        #expect(b.allowsCommands)
        #expect(b.failed("no reply within 200 ms", now: 10) == true)
        #expect(!b.allowsCommands)
        // More failures while a probe is pending schedule no second probe.
        #expect(b.failed("connection refused", now: 10.1) == false)
        #expect(
            b.refusal(now: 11.5)
                == "redis failing for 1.5 s (no reply within 200 ms); failing fast while a probe retries")
        #expect(b.probeFailed("connection refused", now: 11.6) == true)
        #expect(b.refusal(now: 11.6)?.contains("(connection refused)") == true)
        #expect(b.probeSucceeded() == true)
        #expect(b.allowsCommands)
        #expect(b.refusal(now: 12) == nil)
        // Closed again: the next failure opens it and probes anew.
        #expect(b.failed("x", now: 20) == true)
    }

    @Test("+switch-master names the new master of the watched name only")
    func switchMaster() {
        let m = SentinelAnnouncement.switchedMaster("sparkgate 10.0.0.7 6379 10.0.0.8 6380", masterName: "sparkgate")
        #expect(m?.host == "10.0.0.8" && m?.port == 6380)
        for junk in [
            "other 10.0.0.7 6379 10.0.0.8 6380", "sparkgate 10.0.0.7 6379 10.0.0.8", "sparkgate a b c 99999", "",
        ] {
            #expect(SentinelAnnouncement.switchedMaster(junk, masterName: "sparkgate") == nil, "\(junk)")
        }
    }
}
