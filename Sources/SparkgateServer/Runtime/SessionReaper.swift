import Logging
import NIOCore
import ServiceLifecycle
import SparkgateCore

/// Once a second: releases idle sessions on their backend, interrupts operations past their time limit,
/// forgets abandoned operations, and refreshes the activity gauges.
public final class SessionReaper: Service, Sendable {
    let runtime: GatewayRuntime
    let interval: Duration

    public init(runtime: GatewayRuntime, interval: Duration = .seconds(1)) {
        self.runtime = runtime
        self.interval = interval
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
        let state = runtime.state
        let detached = state.config.sessions.operationDetachedSeconds
        let result = runtime.ledger.withLock { ledger in
            ledger.sweep(now: now, detachedTimeout: detached) { team in state.config.team(team)?.quotas ?? state.config.defaultQuotas }
        }
        let loop = runtime.group.next()
        for op in result.overdueOperations {
            let team = op.owner.team
            runtime.metrics.quotaRejection(team: state.teamLabel(team), limit: .operationSeconds)
            let seconds = op.maxSeconds == op.maxSeconds.rounded() ? "\(Int(op.maxSeconds))" : "\(op.maxSeconds)"
            let error = SparkgateError.resourceExhausted("team \(team) allows \(seconds) s per operation (max_operation_seconds); this one ran longer and was interrupted")
            runtime.calls.terminate(operation: op.key, with: error, now: now)
            let record = runtime.ledger.withLock { $0.session(op.key.session) }
            let backendSessionID = record?.backendSessionID
                ?? state.namespace?.backendID(team: team, user: op.owner.user, clientSessionID: op.clientSessionID) ?? op.clientSessionID
            let backend = state.config.team(team)?.backend ?? state.config.defaultBackend
            runtime.backendCalls.interrupt(op.key, backendSessionID: backendSessionID, backend: backend, placement: record?.placement ?? SessionPlacement(), state: state, on: loop)
        }
        for op in result.abandonedOperations {
            runtime.logger.debug("forgetting an abandoned operation", metadata: ["operation.id": "\(op.operationID)", "team": "\(op.owner.team)"])
        }
        if let shared = runtime.shared, !result.idleSessions.isEmpty {
            let sessions = result.idleSessions
            Task { [self] in release(await shared.idleEverywhere(sessions, now: now), state: state, on: loop) }
        } else {
            release(result.idleSessions, state: state, on: loop)
        }
        runtime.metrics.bufferedBytes(runtime.buffered.value)
        let teams = Set(state.config.teams.keys).union(result.idleSessions.map(\.owner.team)).union(result.overdueOperations.map(\.owner.team))
        let counts = runtime.ledger.withLock { ledger in teams.map { ($0, ledger.sessionCount(ofTeam: $0), ledger.activeOperations(team: $0)) } }
        for (team, sessions, operations) in counts where state.config.teams[team] != nil {
            runtime.metrics.activity(team: team, sessions: sessions, operations: operations)
        }
    }

    /// Releases idle sessions on their backend; failures are logged.
    private func release(_ sessions: [SessionRecord], state: GatewayState, on loop: any EventLoop) {
        let logger = runtime.logger
        for session in sessions {
            runtime.backendCalls.release(session, state: state, on: loop).whenComplete { outcome in
                switch outcome {
                case .success(let status) where status.code == .ok:
                    logger.info("released an idle session on the backend", metadata: ["session.id": "\(session.clientSessionID)", "team": "\(session.owner.team)"])
                case .success(let status):
                    logger.warning("the backend refused to release an idle session", metadata: ["session.id": "\(session.clientSessionID)", "grpc.status": "\(status.code.name)"])
                case .failure(let error):
                    logger.warning("could not release an idle session on the backend", metadata: ["session.id": "\(session.clientSessionID)", "error": "\(error)"])
                }
            }
        }
    }
}
