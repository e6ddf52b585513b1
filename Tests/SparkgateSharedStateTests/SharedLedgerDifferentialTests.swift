import Foundation
import Logging
import NIOCore
import NIOPosix
import SparkgateCore
import SparkgateRedis
import SparkgateSharedState
import SparkgateTestSupport
import Synchronization
import Testing

/// The shared state against the in-memory ledger: one `SessionLedger` sees every call, as a single replica
/// would; two replicas with their own ledgers share a real Redis and see the same calls split between them at
/// random. Every admission must get the same answer from both, refusals word for word.
@Suite("Shared state against the in-memory ledger", .serialized)
struct SharedLedgerDifferentialTests {
    static let users = [
        UserKey(team: "red", user: "ann"), UserKey(team: "red", user: "bo"), UserKey(team: "blue", user: "cy"),
    ]
    static let sessionIDs = (1...5).map { "00000000-0000-4000-8000-00000000000\($0)" }
    static let operationIDs = (1...4).map { "10000000-0000-4000-8000-00000000000\($0)" }
    static let methods: [SparkConnectMethod] = [
        .config, .analyzePlan, .executePlan, .executePlan, .reattachExecute, .getStatus, .releaseExecute, .interrupt,
    ]

    static var quotas: QuotaSettings {
        var q = QuotaSettings()
        q.requestsPerSecond = 6
        q.requestBurst = 4
        q.housekeepingRequestsPerSecond = 3
        q.housekeepingRequestBurst = 2
        q.maxSessionsPerUser = 2
        q.maxConcurrentOperationsPerSession = 2
        q.maxConcurrentOperationsPerTeam = 3
        return q
    }

    struct OpenCall {
        var replica: Int
        var call: CallAdmission
        var session: SessionKey { SessionKey(owner: call.caller, clientSessionID: call.clientSessionID) }
    }

    @Test("two replicas through Redis answer every admission as one in-memory ledger does", arguments: 0..<3)
    func sameAnswers(round: Int) async throws {
        guard RedisTestServer.available || RedisTestServer.required else { return }
        let redis = try RedisTestServer()
        defer { redis.stop() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        var settings = SharedStateSettings()
        settings.kind = .redis
        settings.redis.keyPrefix = "test\(round):"
        let errors = ErrorCount()
        let replicas = (0..<2).map { _ in
            let client = RedisClient(
                endpoints: RedisEndpoints(addresses: [("127.0.0.1", redis.port)], timeout: .seconds(2)),
                logger: Logger(label: "test"))
            return SharedState(
                client: client, settings: settings, ledger: LocalLedger(), group: group, logger: Logger(label: "test"),
                seal: RecordSeal(secret: Array(repeating: 7, count: 32))
            ) { _ in errors.add() }
        }
        defer {
            for r in replicas { r.client.shutdown() }
            group.shutdownGracefully { _ in }
        }

        var (rng, seed) = SplitMix64.seeded("shared ledger differential (round \(round))")
        var reference = SessionLedger()
        var open: [OpenCall] = []
        var now = 1_000_000.0
        var trace: [String] = []
        var admitted = 0
        var refused = 0
        for step in 0..<300 {
            now += Double.random(in: 0...0.25, using: &rng)
            let roll = Int.random(in: 0..<100, using: &rng)
            if roll < 60 {
                let user = Self.users.randomElement(using: &rng)!
                let method = Self.methods.randomElement(using: &rng)!
                let id = Self.sessionIDs.randomElement(using: &rng)!
                var call = CallAdmission(
                    caller: user, method: method, clientSessionID: id, backendSessionID: id, backend: "spark")
                if method == .executePlan || method == .reattachExecute {
                    call.operationID = Self.operationIDs.randomElement(using: &rng)!
                }
                call.reattachable = true
                let replica = Int.random(in: 0..<2, using: &rng)
                let expected = reference.admit(call, quotas: Self.quotas, rejectForeignSessions: true, now: now)
                let got = try await replicas[replica].admit(
                    call, quotas: Self.quotas, rejectForeignSessions: true, now: now, on: loop
                ).get()
                trace.append(
                    "\(step) r\(replica) \(method) \(user) \(id) \(call.operationID ?? "") -> \((try? got.get()) != nil ? "ok" : "refused")"
                )
                switch (expected, got) {
                case (.success(let grant), .success):
                    admitted += 1
                    if !grant.alreadyReleased { open.append(OpenCall(replica: replica, call: call)) }
                case (.failure(let a), .failure(let b)):
                    refused += 1
                    #expect(a == b, "step \(step), seed \(seed)")
                default:
                    Issue.record(
                        "step \(step), seed \(seed): \(method) by \(user) on \(id): in memory \(expected), shared \(got)\n\(trace.filter { $0.contains(id) || $0.contains("\(user)") }.suffix(40).joined(separator: "\n"))"
                    )
                    return
                }
            } else if roll < 88, !open.isEmpty {
                let finished = open.remove(at: Int.random(in: 0..<open.count, using: &rng))
                let end = [StreamEnd.completed, .detached, .failed].randomElement(using: &rng)!
                let apply: (inout SessionLedger) -> Void = { ledger in
                    ledger.callEnded(finished.session, bytesIn: 0, bytesOut: 0, rowsOut: 0, now: now)
                    if let op = finished.call.operationID,
                        finished.call.method == .executePlan || finished.call.method == .reattachExecute
                    {
                        ledger.streamEnded(OperationKey(session: finished.session, operationID: op), end, now: now)
                    }
                }
                trace.append(
                    "\(step) r\(finished.replica) end \(finished.call.method) \(finished.call.caller) \(finished.call.clientSessionID) \(end)"
                )
                apply(&reference)
                replicas[finished.replica].ledger.withLock(apply)
            } else if let session = reference.sessions.keys.randomElement(using: &rng) {
                // Released (by its owner, the reaper or an operator): every replica that holds it forgets it.
                trace.append("\(step) release \(session)")
                reference.sessionReleased(session, now: now)
                for r in replicas { r.ledger.withLock { _ = $0.sessionReleased(session, now: now) } }
                open.removeAll { $0.session == session }
            }
            // Each replica sends its removals on its own connection; a PING behind them on each says they
            // landed before the next admission (replicas far apart race like this only within a round trip).
            for r in replicas { _ = try await r.client.send("PING", on: loop).get() }
        }
        #expect(errors.value == 0)
        #expect(
            admitted > 50 && refused > 10,
            "a run that admits or refuses almost nothing tests little (admitted \(admitted), refused \(refused))")
    }
}

final class ErrorCount: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
