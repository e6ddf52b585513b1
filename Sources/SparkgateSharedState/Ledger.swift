import NIOCore
import SparkgateCore

/// Where calls are admitted: this replica's ledger alone (`LocalLedger`), or every replica's through Redis
/// (`SharedState`, which keeps this replica's own part in a `LocalLedger` too). One contract, kept by one
/// conformance suite run against both (`LedgerConformanceTests`).
package protocol Ledger: Sendable {
    /// Admits a call or refuses it, naming the quota or policy that says no.
    func admit(
        _ call: CallAdmission, quotas: QuotaSettings, rejectForeignSessions: Bool, now: Double, on loop: any EventLoop
    ) -> LedgerAnswer

    /// This replica's part (its streams, results and idle times): calls end and sessions are released here,
    /// and a shared ledger hands what ended on to Redis.
    var local: LocalLedger { get }
}

/// An admission's answer: at once (this replica decides alone), or once Redis answered.
package enum LedgerAnswer {
    case now(Result<AdmissionGrant, QuotaOrPolicyRefusal>)
    case later(EventLoopFuture<Result<AdmissionGrant, QuotaOrPolicyRefusal>>)

    /// The answer, waiting for it if it is not there yet.
    package func get() async throws -> Result<AdmissionGrant, QuotaOrPolicyRefusal> {
        switch self {
        case .now(let result): result
        case .later(let future): try await future.get()
        }
    }
}

extension LocalLedger: Ledger {
    package func admit(
        _ call: CallAdmission, quotas: QuotaSettings, rejectForeignSessions: Bool, now: Double, on loop: any EventLoop
    ) -> LedgerAnswer {
        .now(withLock { $0.admit(call, quotas: quotas, rejectForeignSessions: rejectForeignSessions, now: now) })
    }

    package var local: LocalLedger { self }
}

extension SharedState: Ledger {
    package func admit(
        _ call: CallAdmission, quotas: QuotaSettings, rejectForeignSessions: Bool, now: Double, on loop: any EventLoop
    ) -> LedgerAnswer {
        .later(admitEverywhere(call, quotas: quotas, rejectForeignSessions: rejectForeignSessions, now: now, on: loop))
    }

    package var local: LocalLedger { ledger }
}
