import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SparkgateCore
import SparkgateRESP
import SparkgateRedis
import Synchronization

/// Quotas, session ownership and placement shared by every replica through Redis. A call is admitted by the
/// shared state first (atomically, in `SharedScripts.admit`), then by this replica's own ledger, which keeps
/// what only this replica needs (its streams, result counts, idle timers) and enforces nothing the shared
/// state decided. When Redis cannot be reached, the failure policies decide, and the local ledger enforces.
package final class SharedState: Sendable {
    package let client: RedisClient
    package let keys: SharedKeys
    package let settings: SharedStateSettings
    package let ledger: LocalLedger
    package let group: any EventLoopGroup
    package let logger: Logger
    /// This replica's name in what it publishes, so it ignores its own messages.
    package let origin = UUIDText.random()
    /// Counts a failed Redis operation (`sparkgate_state_errors_total`).
    package let countError: @Sendable (_ operation: String) -> Void
    /// Seals what this replica writes and checks what it reads (`state.redis.secret_file`).
    package let seal: RecordSeal
    /// Counts a record or message whose seal did not verify (`sparkgate_state_records_rejected_total`).
    package let countRejected: @Sendable (_ kind: String) -> Void
    /// Seals of messages heard within the replay window, with when each may be forgotten.
    private let heard = Mutex<[String: Double]>([:])
    /// The epoch this replica last saw (`SharedKeys.epoch`); nil before its first check.
    private let knownEpoch = Mutex<String?>(nil)

    package static let admitScript = RedisScript(SharedScripts.admit)
    package static let placeScript = RedisScript(SharedScripts.place)
    package static let releaseScript = RedisScript(SharedScripts.release)
    package static let endOperationScript = RedisScript(SharedScripts.endOperation)
    package static let holdScript = RedisScript(SharedScripts.hold)
    package static let epochScript = RedisScript(SharedScripts.epoch)

    package init(
        client: RedisClient, settings: SharedStateSettings, ledger: LocalLedger, group: any EventLoopGroup,
        logger: Logger,
        seal: RecordSeal,
        countRejected: @escaping @Sendable (String) -> Void = { _ in }, countError: @escaping @Sendable (String) -> Void
    ) {
        self.seal = seal
        self.countRejected = countRejected
        self.client = client
        self.keys = SharedKeys(prefix: settings.redis.keyPrefix)
        self.settings = settings
        self.ledger = ledger
        self.group = group
        self.logger = logger
        self.countError = countError
        ledger.mirror { [weak self] changes in self?.forget(changes) }
    }

    package var holdingSeconds: Double { settings.redis.holdingSeconds }

    /// Admits a call against the shared state, then records it in the local ledger. Completes on `loop`.
    package func admitEverywhere(
        _ call: CallAdmission, quotas: QuotaSettings, rejectForeignSessions: Bool, now: Double, on loop: any EventLoop
    ) -> EventLoopFuture<Result<AdmissionGrant, QuotaOrPolicyRefusal>> {
        let request = SharedAdmission(
            call, quotas: quotas, rejectForeignSessions: rejectForeignSessions, now: now, keys: keys,
            holdingSeconds: holdingSeconds)
        let session = SessionKey(owner: call.caller, clientSessionID: call.clientSessionID)
        let local: @Sendable (Bool, SessionPlacement?) -> Result<AdmissionGrant, QuotaOrPolicyRefusal> = {
            [ledger] enforce, shared in
            ledger.withLock { ledger in
                var result = ledger.admit(
                    call, quotas: quotas, rejectForeignSessions: rejectForeignSessions, now: now, enforce: enforce)
                guard case .success(var grant) = result else { return result }
                if let shared, !shared.isEmpty {
                    // Where another replica (or this one, earlier) placed the session: every replica routes there.
                    ledger.place(session, shared)
                    grant.placement = shared
                } else if shared != nil {
                    // The shared state has no placement (a new session, or Redis lost it): one chosen here is
                    // recorded when the call is routed.
                    grant.placementRecorded = grant.placement.isEmpty
                }
                result = .success(grant)
                return result
            }
        }
        return client.run(Self.admitScript, keys: request.keys, arguments: request.arguments, on: loop).flatMapThrowing
        { reply in
            let texts = reply.array?.compactMap(\.string) ?? []
            guard let verdict = SharedAdmission.verdict(texts, call: call, quotas: quotas) else {
                throw RedisError.protocolViolation("unexpected reply to the admission script: \(texts.prefix(3))")
            }
            switch verdict {
            case .refused(let refusal): return .failure(refusal)
            case .passed: return local(false, nil)
            case .admitted(_, _, let placement, let placementSeal):
                return local(false, self.verified(placement, seal: placementSeal, of: session))
            }
        }.flatMapErrorThrowing { error in
            self.failed("admit", error)
            return self.decideWithout(call, error: error, rejectForeignSessions: rejectForeignSessions) {
                local(true, nil)
            }
        }
    }

    /// Redis is out of reach: the failure policies decide, each for what it covers. Ownership is known
    /// without Redis for a session this replica already holds for the caller.
    private func decideWithout(
        _ call: CallAdmission, error: any Error, rejectForeignSessions: Bool,
        local: () -> Result<AdmissionGrant, QuotaOrPolicyRefusal>
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

    /// Records where a session lives (`SessionRouting.PlacementChange`); completes with the placement every
    /// replica now uses: another replica's, when it recorded one first. Without Redis, this replica's choice.
    package func place(
        _ session: SessionKey, _ change: SessionRouting.PlacementChange, sessionIdleSeconds: Double,
        on loop: any EventLoop
    ) -> EventLoopFuture<SessionPlacement> {
        let placement = change.placement
        let mode: String
        switch change {
        case .claim: mode = "claim"
        case .move: mode = "move"
        }
        let life = sessionIdleSeconds > 0 ? sessionIdleSeconds : SharedAdmission.sessionLifeWithoutIdleLimit
        let name = keys.placement(session)
        let document = SharedScriptArguments.Place(
            endpoint: placement.endpointText, engine: placement.engineText,
            expiryMilliseconds: Int64((max(life, holdingSeconds) + 1) * 1000), mode: mode,
            seal: placementSeal(placement, of: session))
        let arguments = [SharedEngineArguments.json(document)]
        return client.run(Self.placeScript, keys: [name], arguments: arguments, on: loop).flatMap {
            reply -> EventLoopFuture<SessionPlacement> in
            let parts = reply.array?.compactMap(\.string) ?? []
            guard parts.count == 3 else { return loop.makeSucceededFuture(placement) }
            let recorded = SessionPlacement(endpoint: parts[0], engine: parts[1])
            if self.seal.verifies(parts[2], .placement, [name, parts[0], parts[1]]) {
                return loop.makeSucceededFuture(recorded)
            }
            // A placement no replica sealed: it decides nothing; this replica's choice replaces it.
            self.countRejected("record")
            var moving = document
            moving.mode = "move"
            let moved = [SharedEngineArguments.json(moving)]
            return self.client.run(Self.placeScript, keys: [name], arguments: moved, on: loop).map { _ in placement }
        }.recover { error in
            self.failed("place", error)
            return placement
        }.map { recorded in
            self.ledger.withLock { $0.place(session, recorded) }
            return recorded
        }
    }

    /// Where another replica's session lives, for an operator's kill (empty when no replica sealed it).
    package func placement(of session: SessionKey) async throws -> SessionPlacement {
        let reply = try await client.send(
            ["HMGET", keys.placement(session), "e", "g", "m"].map { Array($0.utf8) }, on: group.next()
        ).get()
        let parts = (reply.array ?? []).map { $0.string ?? "" }
        guard parts.count == 3 else { return SessionPlacement() }
        return verified(SessionPlacement(endpoint: parts[0], engine: parts[1]), seal: parts[2], of: session)
    }

    /// The seal of `placement` as `session`'s: the record's name is sealed with it, so no placement can be
    /// moved to another session.
    package func placementSeal(_ placement: SessionPlacement, of session: SessionKey) -> String {
        seal.seal(.placement, [keys.placement(session), placement.endpointText, placement.engineText])
    }

    /// `placement` if `seal` is its seal as `session`'s; otherwise none (and it is counted).
    func verified(_ placement: SessionPlacement, seal given: String, of session: SessionKey) -> SessionPlacement {
        if placement.isEmpty
            || seal.verifies(
                given, .placement, [keys.placement(session), placement.endpointText, placement.engineText])
        {
            return placement
        }
        countRejected("record")
        return SessionPlacement()
    }

    /// A rejected record or message, counted and logged.
    package func rejected(_ kind: String) {
        countRejected(kind)
        logger.warning(
            "shared state (redis) held a \(kind) no replica sealed; ignored it", metadata: ["kind": "\(kind)"])
    }

    /// `event` as this replica publishes it: sealed, with the time.
    package func sealed(_ event: SharedEvent) -> String {
        seal.sealMessage(event.message, now: Date().timeIntervalSince1970)
    }

    /// The body of a message heard on a channel: nil when its seal does not verify, or it was sent outside
    /// the replay window, or it was heard already (each counted).
    package func open(_ text: String, now: Double) -> String? {
        let window = max(30, holdingSeconds)
        switch seal.openMessage(text, now: now, window: window) {
        case .forged, .stale:
            rejected("message")
            return nil
        case .valid(let body, let mac):
            let fresh = heard.withLock { heard in
                if heard.count > 4096 { heard = heard.filter { $0.value > now } }
                guard heard[mac] == nil else { return false }
                heard[mac] = now + 2 * window
                return true
            }
            if !fresh { rejected("message") }
            return fresh ? body : nil
        }
    }

    /// Mirrors what ended in the local ledger, and tells the other replicas. Each removal is idempotent, so
    /// a retry or a duplicate is harmless.
    package func forget(_ changes: [LedgerChange]) {
        let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? group.next()
        for change in changes {
            let done: EventLoopFuture<RESPValue>
            switch change {
            case .operationEnded(let op):
                done = client.run(
                    Self.endOperationScript,
                    keys: [keys.operations(op.session), keys.teamOperations(op.session.owner.team)],
                    arguments: [
                        SharedEngineArguments.json(
                            SharedScriptArguments.EndOperation(
                                operation: op.operationID, teamOperationMember: keys.teamOperationMember(op),
                                channel: keys.endedChannel,
                                message: sealed(SharedEvent(origin: origin, kind: .operationEnded(op)))))
                    ],
                    on: loop)
            case .sessionReleased(let session):
                done = client.run(
                    Self.releaseScript,
                    keys: [
                        keys.owners(session.clientSessionID), keys.sessions(session.owner), keys.operations(session),
                        keys.teamOperations(session.owner.team), keys.placement(session),
                    ],
                    arguments: [
                        SharedEngineArguments.json(
                            SharedScriptArguments.Release(
                                member: keys.member(session.owner), session: session.clientSessionID,
                                teamOperationPrefix: keys.teamOperationPrefix(session), channel: keys.endedChannel,
                                message: sealed(SharedEvent(origin: origin, kind: .sessionReleased(session)))))
                    ], on: loop)
            }
            done.whenFailure { self.failed("forget", $0) }
        }
    }

    /// Another replica released a session or ended an operation: forget this replica's record of it. An
    /// operation with a stream attached here is left to that stream's own evidence.
    package func received(_ event: SharedEvent, now: Double) {
        guard event.origin != origin else { return }
        ledger.withLock { ledger in
            switch event.kind {
            case .sessionReleased(let session):
                ledger.sessionReleasedElsewhere(session, now: now)
            case .operationEnded(let op):
                if (ledger.operation(op)?.attachedStreams ?? 0) == 0 { ledger.operationEndedElsewhere(op) }
            case .engineGone:
                break
            }
        }
        if case .engineGone(let id) = event.kind { engineGone.withLock { $0 }?(id) }
    }

    /// Told when another replica's engine stopped or died.
    private let engineGone = Mutex<(@Sendable (String) -> Void)?>(nil)

    package func onEngineGone(_ handler: @escaping @Sendable (String) -> Void) {
        engineGone.withLock { $0 = handler }
    }

    /// Every heartbeat: if Redis lost its data since the last one (its epoch changed), writes back everything
    /// this replica holds; otherwise renews, for another `holdingSeconds`, the operations and busy sessions.
    ///
    /// `afterFailure` writes back in any case: Redis answering again after failing may have lost writes
    /// that its epoch cannot show (a failover to a replica that was behind keeps the epoch).
    package func heartbeat(now: Double, afterFailure: Bool = false) async {
        let loop = group.next()
        do {
            let reply = try await client.run(
                Self.epochScript, keys: [keys.epoch], arguments: [UUIDText.random()], on: loop
            ).get()
            guard let epoch = reply.string else {
                throw RedisError.protocolViolation("unexpected reply to the epoch script")
            }
            let lost = knownEpoch.withLock { known in
                defer { known = epoch }
                return known != epoch
            }
            if lost || afterFailure {
                await reassert(now: now, on: loop)
                return
            }
        } catch {
            failed("renew", error)
            return
        }
        await renew(now: now, on: loop)
    }

    /// Renews what this replica holds and is busy with; a removed record stays removed.
    private func renew(now: Double, on loop: any EventLoop) async {
        let (operations, busy) = ledger.withLock { ledger in
            (
                Array(ledger.operations.keys),
                ledger.sessions.values.filter { $0.activeCalls > 0 || $0.activeOperations > 0 }
            )
        }
        await hold(operations: operations, sessions: busy, mode: "renew", now: now, on: loop) { _ in
            now + self.holdingSeconds
        }
    }

    /// Writes back every session, operation and placement this replica holds (Redis restarted empty, was
    /// flushed, or failed over to a replica that was behind). Each session keeps its own expiry.
    private func reassert(now: Double, on loop: any EventLoop) async {
        let (operations, sessions) = ledger.withLock { (Array($0.operations.keys), Array($0.sessions.values)) }
        logger.notice(
            "shared state (redis) lost its records; writing back what this replica holds",
            metadata: ["sessions": "\(sessions.count)", "operations": "\(operations.count)"])
        await hold(operations: operations, sessions: sessions, mode: "reassert", now: now, on: loop) { session in
            let life = session.idleSeconds > 0 ? session.idleSeconds : SharedAdmission.sessionLifeWithoutIdleLimit
            let busy = session.activeCalls > 0 || session.activeOperations > 0
            return max(session.lastUsed + max(life, self.holdingSeconds), busy ? now + self.holdingSeconds : 0)
        }
    }

    /// Runs `SharedScripts.hold` over these operations and sessions (with their placements), in batches of at
    /// most 256 keys; stops at the first failure (a failed write-back is tried again at the next heartbeat).
    private func hold(
        operations: [OperationKey], sessions: [SessionRecord], mode: String, now: Double, on loop: any EventLoop,
        sessionExpiry: (SessionRecord) -> Double
    ) async {
        let opExpiry = now + holdingSeconds
        var entries: [(key: String, member: String, expiry: Double)] = []
        for op in operations {
            entries.append((keys.operations(op.session), op.operationID, opExpiry))
            entries.append((keys.teamOperations(op.session.owner.team), keys.teamOperationMember(op), opExpiry))
        }
        var placements: [(key: String, expiry: Double, placement: SessionPlacement, seal: String)] = []
        for session in sessions {
            let expiry = sessionExpiry(session)
            entries.append((keys.owners(session.clientSessionID), keys.member(session.owner), expiry))
            entries.append((keys.sessions(session.owner), session.clientSessionID, expiry))
            if !session.placement.isEmpty {
                placements.append(
                    (
                        keys.placement(session.key), expiry, session.placement,
                        placementSeal(session.placement, of: session.key)
                    ))
            }
        }
        var start = 0
        var placed = 0
        while start < entries.count || placed < placements.count {
            let batch = entries[start..<min(start + 256, entries.count)]
            start += batch.count
            let places = placements[placed..<min(placed + 256 - batch.count, placements.count)]
            placed += places.count
            let arguments = [
                SharedEngineArguments.json(
                    SharedScriptArguments.Hold(
                        now: now, mode: mode,
                        members: batch.map { .init(expiry: $0.expiry, member: $0.member) },
                        placements: places.map {
                            .init(
                                expiry: $0.expiry, endpoint: $0.placement.endpointText,
                                engine: $0.placement.engineText, seal: $0.seal)
                        }))
            ]
            do {
                _ = try await client.run(
                    Self.holdScript, keys: batch.map(\.key) + places.map(\.key), arguments: arguments, on: loop
                ).get()
            } catch {
                failed(mode, error)
                if mode == "reassert" { knownEpoch.withLock { $0 = nil } }
                return
            }
        }
    }

    /// Of sessions idle on this replica, those idle on every replica (no replica's use since extends them in
    /// Redis), now forgotten there too: release these on the backend. On a Redis failure none is released,
    /// since another replica may be using them; Spark's own session timeout is the backstop.
    package func idleEverywhere(_ sessions: [SessionRecord], now: Double) async -> [SessionRecord] {
        let loop = group.next()
        var idle: [SessionRecord] = []
        for session in sessions {
            do {
                let score = try await client.send(
                    ["ZSCORE", keys.sessions(session.owner), session.clientSessionID].map { Array($0.utf8) }, on: loop
                ).get()
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

    /// The teams of `user` that hold `sessionID` on any replica at `now`.
    package func owners(of sessionID: String, user: String, now: Double) async throws -> [UserKey] {
        let reply = try await client.send(
            ["ZRANGEBYSCORE", keys.owners(sessionID), SharedAdmission.number(now), "+inf"].map { Array($0.utf8) },
            on: group.next()
        ).get()
        return (reply.array ?? []).compactMap { $0.string.flatMap(SharedKeys.user(fromMember:)) }.filter {
            $0.user == user
        }
    }

    /// Tells every replica that an operator ended a session, so each ends the streams it holds.
    package func publishKill(_ session: SessionKey) async throws {
        let message = seal.sealMessage(keys.killMessage(session), now: Date().timeIntervalSince1970)
        _ = try await client.send(["PUBLISH", keys.killChannel, message].map { Array($0.utf8) }, on: group.next()).get()
    }

    private func failed(_ operation: String, _ error: any Error) {
        countError(operation)
        logger.warning("shared state (redis) failed", metadata: ["operation": "\(operation)", "error": "\(error)"])
    }
}

extension SharedState {
    /// The Redis client's endpoints from the `state.redis` settings.
    package static func endpoints(
        _ redis: SharedStateSettings.Redis, password: String?, sentinelPassword: String?, tls: NIOSSLContext?
    ) -> RedisEndpoints {
        RedisEndpoints(
            addresses: redis.addresses.map { ($0.host, $0.port) },
            sentinel: redis.sentinel.map { s in
                RedisEndpoints.Sentinel(
                    addresses: s.addresses.map { ($0.host, $0.port) }, masterName: s.masterName,
                    password: sentinelPassword)
            },
            password: password, username: redis.username, database: redis.database, tls: tls,
            timeout: .milliseconds(Int64(redis.timeoutMilliseconds)))
    }
}
