import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SparkgateCore
import SparkgateRedis

/// Quotas and session ownership shared by every replica through Redis. A call is admitted by the shared
/// state first (atomically, in `SharedScripts.admit`), then by this replica's own ledger, which keeps what
/// only this replica needs (its streams, result counts, idle timers) and enforces nothing the shared state
/// decided. When Redis cannot be reached, the failure policies decide, and the local ledger enforces.
final class SharedState: Sendable {
    let client: RedisClient
    let keys: SharedKeys
    let settings: StateSettings
    let ledger: SharedLedger
    let group: any EventLoopGroup
    let logger: Logger
    /// Counts a failed Redis operation (`sparkgate_state_errors_total`).
    let countError: @Sendable (_ operation: String) -> Void

    static let admitScript = RedisScript(SharedScripts.admit)
    static let releaseScript = RedisScript(SharedScripts.release)
    static let renewScript = RedisScript(SharedScripts.renew)

    init(client: RedisClient, settings: StateSettings, ledger: SharedLedger, group: any EventLoopGroup, logger: Logger, countError: @escaping @Sendable (String) -> Void) {
        self.client = client
        self.keys = SharedKeys(prefix: settings.redis.keyPrefix)
        self.settings = settings
        self.ledger = ledger
        self.group = group
        self.logger = logger
        self.countError = countError
        ledger.mirror { [weak self] changes in self?.forget(changes) }
    }

    var holdingSeconds: Double { settings.redis.holdingSeconds }

    /// Admits a call against the shared state, then records it in the local ledger. Completes on `loop`.
    func admit(
        _ call: CallAdmission, quotas: QuotaSettings, rejectForeignSessions: Bool, now: Double, on loop: any EventLoop
    ) -> EventLoopFuture<Result<AdmissionGrant, QuotaOrPolicyRefusal>> {
        let request = SharedAdmission(call, quotas: quotas, rejectForeignSessions: rejectForeignSessions, now: now, keys: keys, holdingSeconds: holdingSeconds)
        let local: @Sendable (Bool) -> Result<AdmissionGrant, QuotaOrPolicyRefusal> = { [ledger] enforce in
            ledger.withLock { $0.admit(call, quotas: quotas, rejectForeignSessions: rejectForeignSessions, now: now, enforce: enforce) }
        }
        return client.run(Self.admitScript, keys: request.keys, arguments: request.arguments, on: loop).flatMapThrowing { reply in
            let texts = reply.array?.compactMap(\.string) ?? []
            guard let verdict = SharedAdmission.verdict(texts, call: call, quotas: quotas) else {
                throw RedisError.protocolViolation("unexpected reply to the admission script: \(texts.prefix(3))")
            }
            switch verdict {
            case .refused(let refusal): return .failure(refusal)
            case .passed, .admitted: return local(false)
            }
        }.flatMapErrorThrowing { error in
            self.failed("admit", error)
            return self.decideWithout(call, error: error, rejectForeignSessions: rejectForeignSessions) { local(true) }
        }
    }

    /// Redis is out of reach: the failure policies decide, each for what it covers. Ownership is known
    /// without Redis for a session this replica already holds for the caller.
    private func decideWithout(
        _ call: CallAdmission, error: any Error, rejectForeignSessions: Bool, local: () -> Result<AdmissionGrant, QuotaOrPolicyRefusal>
    ) -> Result<AdmissionGrant, QuotaOrPolicyRefusal> {
        let unavailable = QuotaOrPolicyRefusal.unavailable(
            SparkgateError(.unavailable, "shared state (redis) unreachable: \(error); retry shortly"))
        if settings.quotasPolicy == .failClosed { return .failure(unavailable) }
        if settings.ownershipPolicy == .failClosed && rejectForeignSessions {
            let key = SessionKey(owner: call.caller, clientSessionID: call.clientSessionID)
            let known = ledger.withLock { $0.session(key) != nil }
            if !known { return .failure(unavailable) }
        }
        return local()
    }

    /// Mirrors what ended in the local ledger. Each removal is idempotent, so a retry or a duplicate is harmless.
    func forget(_ changes: [LedgerChange]) {
        let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? group.next()
        for change in changes {
            let done: EventLoopFuture<RESPValue>
            switch change {
            case .operationEnded(let op):
                done = client.send(["ZREM", keys.operations(op.session), op.operationID].map { Array($0.utf8) }, on: loop).and(
                    client.send(["ZREM", keys.teamOperations(op.session.owner.team), keys.teamOperationMember(op)].map { Array($0.utf8) }, on: loop)
                ).map(\.0)
            case .sessionReleased(let session):
                done = client.run(
                    Self.releaseScript,
                    keys: [keys.owners(session.clientSessionID), keys.sessions(session.owner), keys.operations(session), keys.teamOperations(session.owner.team)],
                    arguments: [keys.member(session.owner), session.clientSessionID, keys.teamOperationPrefix(session)], on: loop)
            }
            done.whenFailure { self.failed("forget", $0) }
        }
    }

    /// Renews, for another `holdingSeconds`, the operations and busy sessions this replica holds.
    func renew(now: Double) async {
        let held = ledger.withLock { ledger in
            (Array(ledger.operations.keys), ledger.sessions.values.filter { $0.activeCalls > 0 || $0.activeOperations > 0 }.map(\.key))
        }
        let expiry = SharedAdmission.number(now + holdingSeconds)
        var entries: [(key: String, member: String)] = []
        for op in held.0 {
            entries.append((keys.operations(op.session), op.operationID))
            entries.append((keys.teamOperations(op.session.owner.team), keys.teamOperationMember(op)))
        }
        for session in held.1 {
            entries.append((keys.owners(session.clientSessionID), keys.member(session.owner)))
            entries.append((keys.sessions(session.owner), session.clientSessionID))
        }
        let loop = group.next()
        var start = 0
        while start < entries.count {
            let batch = entries[start..<min(start + 256, entries.count)]
            start += batch.count
            do {
                _ = try await client.run(
                    Self.renewScript, keys: batch.map(\.key), arguments: [SharedAdmission.number(now)] + batch.flatMap { [expiry, $0.member] }, on: loop
                ).get()
            } catch {
                failed("renew", error)
                return
            }
        }
    }

    /// Of sessions idle on this replica, those idle on every replica (no replica's use since extends them in
    /// Redis), now forgotten there too: release these on the backend. On a Redis failure none is released,
    /// since another replica may be using them; Spark's own session timeout is the backstop.
    func idleEverywhere(_ sessions: [SessionRecord], now: Double) async -> [SessionRecord] {
        let loop = group.next()
        var idle: [SessionRecord] = []
        for session in sessions {
            do {
                let score = try await client.send(["ZSCORE", keys.sessions(session.owner), session.clientSessionID].map { Array($0.utf8) }, on: loop).get()
                let expiry = score.string.flatMap(Double.init) ?? 0
                // Every call renews the session to at least its idle time from then; anything later than
                // this replica's own deadline is another replica's use.
                if expiry <= session.lastUsed + max(session.idleSeconds, holdingSeconds) + 1 {
                    idle.append(session)
                    forget([.sessionReleased(session.key)])
                }
            } catch {
                failed("idle_check", error)
            }
        }
        return idle
    }

    /// The teams of `user` that hold `sessionID` on any replica.
    func owners(of sessionID: String, user: String) async throws -> [UserKey] {
        let reply = try await client.send(
            ["ZRANGEBYSCORE", keys.owners(sessionID), SharedAdmission.number(WallClock.now()), "+inf"].map { Array($0.utf8) }, on: group.next()
        ).get()
        return (reply.array ?? []).compactMap { $0.string.flatMap(SharedKeys.user(fromMember:)) }.filter { $0.user == user }
    }

    /// Tells every replica that an operator ended a session, so each ends the streams it holds.
    func publishKill(_ session: SessionKey) async throws {
        _ = try await client.send(["PUBLISH", keys.killChannel, keys.killMessage(session)].map { Array($0.utf8) }, on: group.next()).get()
    }

    private func failed(_ operation: String, _ error: any Error) {
        countError(operation)
        logger.warning("shared state (redis) failed", metadata: ["operation": "\(operation)", "error": "\(error)"])
    }
}

extension SharedState {
    /// The Redis client's endpoints from the `state.redis` settings.
    static func endpoints(_ redis: StateSettings.Redis, password: String?, tls: NIOSSLContext?) -> RedisEndpoints {
        RedisEndpoints(
            addresses: redis.addresses.map { ($0.host, $0.port) }, password: password, tls: tls,
            timeout: .milliseconds(Int64(redis.timeoutMilliseconds)))
    }
}
