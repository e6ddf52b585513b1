/// Sparkgate ending a call itself: the status the client reads, the audit reason, and what to count.
public struct CallRefusal: Error, Sendable, Equatable {
    /// What the refusal counts toward, besides `sparkgate_rpcs_total`.
    public enum Metric: Sendable, Equatable {
        case authFailure(AuthFailure.Reason)
        case quota(QuotaLimit)
        /// The backend could not be reached or broke the stream.
        case backend
        /// A limit of `limits` (`sparkgate_limit_events_total`).
        case limit(LimitEvent)
    }

    public var error: SparkgateError
    /// The audit line's `reason` (a short snake_case word).
    public var reason: String
    public var metric: Metric?

    public init(_ error: SparkgateError, reason: String, metric: Metric? = nil) {
        self.error = error
        self.reason = reason
        self.metric = metric
    }

    /// Whether the refusal was the client's doing, so it counts toward its connection's refusal budget: not
    /// when the backend failed, the client cancelled, its deadline passed, or Sparkgate ended the call itself.
    public var isClientFault: Bool {
        if metric == .backend { return false }
        switch reason {
        case "client_cancelled", "deadline", "terminated", "draining", "internal", "operation_ended": return false
        default: return true
        }
    }

    public static func auth(_ failure: AuthFailure) -> CallRefusal {
        CallRefusal(failure.error, reason: failure.reason.rawValue, metric: .authFailure(failure.reason))
    }

    public static func quota(_ refusal: QuotaRefusal) -> CallRefusal {
        CallRefusal(refusal.error, reason: refusal.limit.rawValue, metric: .quota(refusal.limit))
    }

    public static func ledger(_ refusal: QuotaOrPolicyRefusal) -> CallRefusal {
        switch refusal {
        case .quota(let q): .quota(q)
        case .policy(let e): CallRefusal(e, reason: e.code == .alreadyExists ? "operation_exists" : "foreign_session")
        case .unavailable(let e): CallRefusal(e, reason: "state_unavailable")
        }
    }
}
