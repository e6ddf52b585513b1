import Logging
import NIOCore
import ServiceLifecycle
import SparkgateCore
import SparkgateEngines
import SparkgateObservability
import SparkgateSharedState
import SparkgateTransport

/// Once a second: releases idle sessions and sessions past their lifetime on their backend, interrupts
/// operations past their time limit, forgets abandoned operations, and refreshes the activity gauges.
public final class SessionReaper: Service, Sendable {
    let current: @Sendable () -> GatewayGeneration
    let ledger: LocalLedger
    let shared: SharedState?
    let calls: CallRegistry
    let backendCalls: BackendCalls
    let buffered: BufferedBytes
    let metrics: GatewayMetrics
    let logger: Logger
    let group: any EventLoopGroup
    let interval: Duration

    init(
        current: @escaping @Sendable () -> GatewayGeneration, ledger: LocalLedger, shared: SharedState?,
        calls: CallRegistry,
        backendCalls: BackendCalls,
        buffered: BufferedBytes, metrics: GatewayMetrics, logger: Logger, group: any EventLoopGroup, interval: Duration
    ) {
        self.current = current
        self.ledger = ledger
        self.shared = shared
        self.calls = calls
        self.backendCalls = backendCalls
        self.buffered = buffered
        self.metrics = metrics
        self.logger = logger
        self.group = group
        self.interval = interval
    }

    public convenience init(runtime: GatewayRuntime, interval: Duration = .seconds(1)) {
        self.init(
            current: { runtime.state }, ledger: runtime.ledger, shared: runtime.shared, calls: runtime.calls,
            backendCalls: runtime.backendCalls,
            buffered: runtime.buffered, metrics: runtime.metrics, logger: runtime.logger, group: runtime.group,
            interval: interval)
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.interval)
                if Task.isCancelled { break }
                self.sweep(now: WallClock.now())
            }
        }
    }

    func sweep(now: Double) {
        let state = current()
        let detached = state.config.sessions.operationDetachedSeconds
        let result = ledger.withLock { ledger in
            ledger.sweep(now: now, detachedTimeout: detached) { team in
                state.config.team(team)?.quotas ?? state.config.defaultQuotas
            }
        }
        let loop = group.next()
        for op in result.overdueOperations {
            let team = op.owner.team
            metrics.quotaRejection(team: state.teamLabel(team), limit: .operationSeconds)
            let seconds = op.maxSeconds == op.maxSeconds.rounded() ? "\(Int(op.maxSeconds))" : "\(op.maxSeconds)"
            let error = SparkgateError.resourceExhausted(
                "team \(team) allows \(seconds) s per operation (max_operation_seconds); this one ran longer and was interrupted"
            )
            calls.terminate(operation: op.key, with: error, now: now)
            let record = ledger.withLock { $0.session(op.key.session) }
            let backendSessionID =
                record?.backendSessionID
                ?? state.namespace?.backendID(team: team, user: op.owner.user, clientSessionID: op.clientSessionID)
                ?? op.clientSessionID
            let backend = state.config.team(team)?.backend ?? state.config.defaultBackend
            backendCalls.interrupt(
                op.key, backendSessionID: backendSessionID, backend: backend,
                placement: record?.placement ?? SessionPlacement(), access: state.backendAccess, on: loop)
        }
        for session in result.expiredSessions {
            // Its calls end now, with what its next call will be told too.
            let error = QuotaOrPolicyRefusal.sessionExpired(
                session.clientSessionID, limit: session.maxSeconds, age: now - session.created
            ).error
            calls.terminate(session: session.key, with: error)
            logger.info(
                "released a session at the end of its lifetime",
                metadata: [
                    "session.id": "\(session.clientSessionID)", "team": "\(session.owner.team)",
                    "max_session_seconds": "\(session.maxSeconds)",
                ])
        }
        if !result.expiredSessions.isEmpty {
            metrics.sessionExpired("lifetime", count: Int64(result.expiredSessions.count))
            release(result.expiredSessions, access: state.backendAccess, on: loop)
        }
        for op in result.abandonedOperations {
            logger.debug(
                "forgetting an abandoned operation",
                metadata: ["operation.id": "\(op.operationID)", "team": "\(op.owner.team)"])
        }
        if let shared = shared, !result.idleSessions.isEmpty {
            let sessions = result.idleSessions
            Task { [self] in
                let idle = await shared.idleEverywhere(sessions, now: now)
                if !idle.isEmpty { metrics.sessionExpired("idle", count: Int64(idle.count)) }
                release(idle, access: state.backendAccess, on: loop)
            }
        } else {
            if !result.idleSessions.isEmpty { metrics.sessionExpired("idle", count: Int64(result.idleSessions.count)) }
            release(result.idleSessions, access: state.backendAccess, on: loop)
        }
        metrics.bufferedBytes(buffered.value)
        let teams = Set(state.config.teams.keys).union(result.idleSessions.map(\.owner.team)).union(
            result.overdueOperations.map(\.owner.team))
        let counts = ledger.withLock { ledger in
            teams.map { ($0, ledger.sessionCount(ofTeam: $0), ledger.activeOperations(team: $0)) }
        }
        for (team, sessions, operations) in counts where state.config.teams[team] != nil {
            metrics.activity(team: team, sessions: sessions, operations: operations)
        }
    }

    /// Releases sessions on their backend; failures are logged.
    private func release(_ sessions: [SessionRecord], access: BackendAccess, on loop: any EventLoop) {
        let logger = logger
        for session in sessions {
            backendCalls.release(session, access: access, on: loop).whenComplete { outcome in
                switch outcome {
                case .success(let status) where status.code == .ok:
                    logger.info(
                        "released a session on the backend",
                        metadata: ["session.id": "\(session.clientSessionID)", "team": "\(session.owner.team)"])
                case .success(let status):
                    logger.warning(
                        "the backend refused to release a session",
                        metadata: ["session.id": "\(session.clientSessionID)", "grpc.status": "\(status.code.name)"])
                case .failure(let error):
                    logger.warning(
                        "could not release a session on the backend",
                        metadata: ["session.id": "\(session.clientSessionID)", "error": "\(error)"])
                }
            }
        }
    }
}
