/// A token bucket: `rate` tokens a second up to `burst`, one token per request.
public struct TokenBucket: Sendable, Equatable {
    public private(set) var tokens: Double
    public private(set) var updated: Double

    public init(burst: Int, now: Double) {
        self.tokens = Double(burst)
        self.updated = now
    }

    /// Takes one token. On refusal, returns how long until one is available (the client's retry delay).
    public mutating func take(rate: Double, burst: Int, now: Double) -> Double? {
        guard rate > 0 else { return nil }  // 0 = unlimited
        let elapsed = max(0, now - updated)
        tokens = min(Double(burst), tokens + elapsed * rate)
        updated = max(updated, now)
        if tokens >= 1 {
            tokens -= 1
            return nil
        }
        return (1 - tokens) / rate
    }

    /// Whether the bucket would be full at `now`, so forgetting it changes nothing.
    public func isFull(rate: Double, burst: Int, now: Double) -> Bool {
        rate <= 0 || tokens + max(0, now - updated) * rate >= Double(burst)
    }
}
