import Logging
import NIOCore
import NIOPosix
import SparkgateCore
import SparkgateRedis
import SparkgateSharedState
import SparkgateTestSupport
import Testing

/// The `Ledger` contract, run against each implementation: this replica's ledger alone, and the shared state
/// on a real `redis-server`. Every case states the answers a ledger must give; both must give them, refusals
/// word for word.
@Suite("Ledger contract, local and shared", .serialized)
struct LedgerConformanceTests {
    enum Kind: String, CaseIterable, CustomTestStringConvertible {
        case local, redis
        var testDescription: String { rawValue }
    }

    /// One ledger under test, with what it needs to run and to be stopped.
    final class Subject {
        let ledger: any Ledger
        let loop: any EventLoop
        private let group: MultiThreadedEventLoopGroup
        private let redis: RedisTestServer?
        private let client: RedisClient?

        init?(_ kind: Kind) throws {
            group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            loop = group.next()
            switch kind {
            case .local:
                redis = nil
                client = nil
                ledger = LocalLedger()
            case .redis:
                guard RedisTestServer.available || RedisTestServer.required else { return nil }
                let server = try RedisTestServer()
                let client = RedisClient(
                    endpoints: RedisEndpoints(addresses: [("127.0.0.1", server.port)], timeout: .seconds(2)),
                    logger: Logger(label: "test"))
                var settings = SharedStateSettings()
                settings.kind = .redis
                redis = server
                self.client = client
                ledger = SharedState(
                    client: client, settings: settings, ledger: LocalLedger(), group: group,
                    logger: Logger(label: "test"), seal: RecordSeal(secret: Array(repeating: 9, count: 32))
                ) { operation in Issue.record("redis operation \(operation) failed") }
            }
        }

        func admit(
            _ call: CallAdmission, _ quotas: QuotaSettings, foreign: Bool = true, at now: Double
        ) async throws
            -> Result<AdmissionGrant, QuotaOrPolicyRefusal>
        {
            try await ledger.admit(call, quotas: quotas, rejectForeignSessions: foreign, now: now, on: loop).get()
        }

        /// What this replica ended reaches Redis before the next admission (a PING behind it on the connection).
        func settle() async throws {
            if let client { _ = try await client.send("PING", on: loop).get() }
        }

        func stop() {
            client?.shutdown()
            redis?.stop()
            try? group.syncShutdownGracefully()
        }
    }

    static let ann = UserKey(team: "red", user: "ann")
    static let bo = UserKey(team: "red", user: "bo")
    static let t0 = 1_000_000.0

    static func session(_ n: Int) -> String { "00000000-0000-4000-8000-00000000000\(n)" }
    static func operation(_ n: Int) -> String { "10000000-0000-4000-8000-00000000000\(n)" }

    static func call(
        _ user: UserKey, _ method: SparkConnectMethod, session: Int, operation: Int? = nil
    )
        -> CallAdmission
    {
        var c = CallAdmission(
            caller: user, method: method, clientSessionID: Self.session(session),
            backendSessionID: Self.session(session), backend: "spark")
        c.operationID = operation.map(Self.operation)
        c.reattachable = true
        return c
    }

    static var quotas: QuotaSettings {
        var q = QuotaSettings()
        q.maxSessionsPerUser = 2
        q.maxConcurrentOperationsPerSession = 1
        q.maxConcurrentOperationsPerTeam = 2
        return q
    }

    func refusal(_ result: Result<AdmissionGrant, QuotaOrPolicyRefusal>) -> QuotaOrPolicyRefusal? {
        if case .failure(let refusal) = result { return refusal }
        return nil
    }

    func run(_ kind: Kind, _ body: (Subject) async throws -> Void) async throws {
        guard let subject = try Subject(kind) else { return }
        defer { subject.stop() }
        try await body(subject)
    }

    @Test(
        "a user's sessions are counted: one over the limit is refused until one is released", arguments: Kind.allCases)
    func sessionsPerUser(kind: Kind) async throws {
        try await run(kind) { s in
            let q = Self.quotas
            #expect(refusal(try await s.admit(Self.call(Self.ann, .config, session: 1), q, at: Self.t0)) == nil)
            #expect(refusal(try await s.admit(Self.call(Self.ann, .config, session: 2), q, at: Self.t0)) == nil)
            // Calls on a session already open never count again.
            #expect(refusal(try await s.admit(Self.call(Self.ann, .analyzePlan, session: 2), q, at: Self.t0)) == nil)
            let third = try await s.admit(Self.call(Self.ann, .config, session: 3), q, at: Self.t0)
            #expect(
                refusal(third) == .quota(.sessionsPerUser(team: "red", quotas: q, user: "ann", open: 2)))
            // Another user of the team has sessions of their own.
            #expect(refusal(try await s.admit(Self.call(Self.bo, .config, session: 3), q, at: Self.t0)) == nil)
            let first = SessionKey(owner: Self.ann, clientSessionID: Self.session(1))
            _ = s.ledger.local.withLock { $0.sessionReleased(first, now: Self.t0 + 1) }
            try await s.settle()
            #expect(refusal(try await s.admit(Self.call(Self.ann, .config, session: 4), q, at: Self.t0 + 2)) == nil)
        }
    }

    @Test("a session id held by one user is refused to another, by name", arguments: Kind.allCases)
    func foreignSessions(kind: Kind) async throws {
        try await run(kind) { s in
            let q = Self.quotas
            #expect(refusal(try await s.admit(Self.call(Self.ann, .config, session: 1), q, at: Self.t0)) == nil)
            let stolen = try await s.admit(Self.call(Self.bo, .config, session: 1), q, at: Self.t0)
            #expect(refusal(stolen) == .foreignSession(Self.session(1)))
        }
    }

    @Test(
        "concurrent operations are counted per session and per team, and free again when their streams end",
        arguments: Kind.allCases)
    func operations(kind: Kind) async throws {
        try await run(kind) { s in
            let q = Self.quotas
            let running = Self.call(Self.ann, .executePlan, session: 1, operation: 1)
            #expect(refusal(try await s.admit(running, q, at: Self.t0)) == nil)
            // The same id again is a new ExecutePlan on a running operation: refused, never taken over.
            #expect(refusal(try await s.admit(running, q, at: Self.t0)) == .operationExists(Self.operation(1)))
            let second = try await s.admit(
                Self.call(Self.ann, .executePlan, session: 1, operation: 2), q, at: Self.t0)
            #expect(refusal(second) == .quota(.operationsPerSession(team: "red", quotas: q, running: 1)))
            #expect(
                refusal(
                    try await s.admit(Self.call(Self.bo, .executePlan, session: 2, operation: 3), q, at: Self.t0))
                    == nil)
            let third = try await s.admit(Self.call(Self.ann, .executePlan, session: 3, operation: 4), q, at: Self.t0)
            #expect(refusal(third) == .quota(.operationsPerTeam(team: "red", quotas: q, running: 2)))
            // The first operation's stream completes: its session and its team have room again.
            let session = SessionKey(owner: Self.ann, clientSessionID: Self.session(1))
            s.ledger.local.withLock { ledger in
                ledger.callEnded(session, bytesIn: 0, bytesOut: 0, rowsOut: 0, now: Self.t0 + 1)
                ledger.streamEnded(
                    OperationKey(session: session, operationID: Self.operation(1)), .completed, now: Self.t0 + 1)
            }
            try await s.settle()
            #expect(
                refusal(
                    try await s.admit(Self.call(Self.ann, .executePlan, session: 1, operation: 2), q, at: Self.t0 + 2))
                    == nil)
        }
    }

    @Test(
        "requests beyond the rate and burst are refused with the wait, and pass once it is over",
        arguments: Kind.allCases)
    func requestRate(kind: Kind) async throws {
        try await run(kind) { s in
            var q = Self.quotas
            q.requestsPerSecond = 2
            q.requestBurst = 2
            for _ in 0..<2 {
                #expect(refusal(try await s.admit(Self.call(Self.ann, .config, session: 1), q, at: Self.t0)) == nil)
            }
            let over = try await s.admit(Self.call(Self.ann, .config, session: 1), q, at: Self.t0)
            #expect(refusal(over) == .quota(.requestRate(team: "red", quotas: q, wait: 0.5)))
            #expect(refusal(try await s.admit(Self.call(Self.ann, .config, session: 1), q, at: Self.t0 + 0.5)) == nil)
        }
    }
}
