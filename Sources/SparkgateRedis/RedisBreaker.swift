/// Whether commands may go to Redis: closed while it answers, open from the first connection-level failure
/// (a timeout, a refused or lost connection, a demoted master) until a background probe gets an answer.
/// While open, commands fail at once, so callers apply their failure policy instead of each waiting out a
/// deadline behind a server that does not answer. Pure: time is a parameter.
public struct RedisBreaker: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case closed
        /// Failing since `since` (seconds), for `reason`.
        case open(since: Double, reason: String)
    }

    public private(set) var state = State.closed
    /// A probe is scheduled or running: at most one at a time.
    public private(set) var probing = false

    public init() {}

    public var allowsCommands: Bool { state == .closed }

    /// A command or connection failed at the connection level. Returns true when a probe must be scheduled.
    public mutating func failed(_ reason: String, now: Double) -> Bool {
        if case .closed = state { state = .open(since: now, reason: reason) }
        guard !probing else { return false }
        probing = true
        return true
    }

    /// A probe got its answer. Returns true when the breaker closed now (Redis is back).
    public mutating func probeSucceeded() -> Bool {
        probing = false
        guard case .open = state else { return false }
        state = .closed
        return true
    }

    /// A probe failed: returns true when another must be scheduled (the breaker is still open).
    public mutating func probeFailed(_ reason: String, now: Double) -> Bool {
        switch state {
        case .closed:
            probing = false
            return false
        case .open(let since, _):
            state = .open(since: since, reason: reason)
            return true
        }
    }

    /// What a command refused while open is told.
    public func refusal(now: Double) -> String? {
        guard case .open(let since, let reason) = state else { return nil }
        let seconds = (max(0, now - since) * 10).rounded() / 10
        return "redis failing for \(seconds) s (\(reason)); failing fast while a probe retries"
    }
}
