/// What a finished call counts toward, decided from its outcome: the executor records each, under the
/// caller's team label.
public enum CallMetric: Sendable, Equatable {
    case authFailure(AuthFailure.Reason)
    case quotaRejection(QuotaLimit)
    case backendError(backend: String)
    case limitEvent(LimitEvent)
    /// Every call: `sparkgate_rpcs_total` and the duration histogram.
    case rpc(method: String, code: GRPCStatusCode, seconds: Double)
    /// Authenticated calls: bytes in, result bytes and rows out.
    case traffic(requestBytes: Int, resultBytes: Int, rows: Int64)
    case firstResponse(seconds: Double)
}

extension CallOutcome {
    /// Hands `body` each metric this outcome moves, in the order they are recorded (no array per call).
    public func forEachMetric(_ body: (CallMetric) -> Void) {
        switch refusal?.metric {
        case .authFailure(let reason)?: body(.authFailure(reason))
        case .quota(let limit)?: body(.quotaRejection(limit))
        case .backend?: body(.backendError(backend: summary.backend ?? ""))
        case .limit(let event)?: body(.limitEvent(event))
        case nil: break
        }
        body(.rpc(method: method.label, code: code, seconds: summary.durationSeconds))
        if identity != nil {
            body(.traffic(requestBytes: summary.requestBytes, resultBytes: summary.resultBytes, rows: summary.rows))
        }
        if let seconds = firstResponseSeconds { body(.firstResponse(seconds: seconds)) }
    }

    /// The same, as a list (for tests).
    public var metrics: [CallMetric] {
        var all: [CallMetric] = []
        forEachMetric { all.append($0) }
        return all
    }
}
