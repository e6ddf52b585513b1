/// The health of one backend endpoint, from active checks and failed connections: it stops taking new
/// sessions after `unhealthy_after` consecutive failures and takes them again after `healthy_after`
/// consecutive successful checks. It starts healthy, so a gateway serves at once after a restart.
public struct EndpointHealth: Sendable, Equatable {
    public private(set) var healthy = true
    private var failures = 0
    private var successes = 0

    public init() {}

    /// Records a check or connection outcome; returns the new state when it changed.
    public mutating func record(ok: Bool, settings: HealthSettings) -> Bool? {
        if ok {
            failures = 0
            successes += 1
            if !healthy && successes >= settings.healthyAfter {
                healthy = true
                return true
            }
        } else {
            successes = 0
            failures += 1
            if healthy && failures >= settings.unhealthyAfter {
                healthy = false
                return false
            }
        }
        return nil
    }
}

/// Where a call goes among a backend's endpoints.
public enum EndpointSelection {
    /// The endpoints in rendezvous order for a session: every replica ranks them the same way, and adding an
    /// endpoint moves only the sessions it wins.
    public static func rank(_ endpoints: [HostPort], for sessionID: String) -> [HostPort] {
        guard endpoints.count > 1 else { return endpoints }
        return endpoints.map { ($0, score("\($0)|\(sessionID)")) }.sorted { $0.1 > $1.1 }.map(\.0)
    }

    /// A session's endpoint: where it is pinned while that is healthy; for a new session, the first healthy
    /// one in rendezvous order. A pinned session whose endpoint is down is refused rather than moved (its
    /// state lives on that server) unless the operator allows moving it.
    public static func select(
        _ endpoints: [HostPort], for sessionID: String, pinned: HostPort?, isHealthy: (HostPort) -> Bool,
        moveSessions: Bool, backend: String
    ) -> Result<HostPort, SparkgateError> {
        if let pinned, endpoints.contains(pinned) {
            if isHealthy(pinned) { return .success(pinned) }
            if !moveSessions {
                return .failure(
                    .unavailable(
                        "backend '\(backend)' endpoint \(pinned), where this session lives, is failing its health checks; retry later, or start a new session"
                    ))
            }
        }
        let ranked = rank(endpoints, for: sessionID)
        guard let first = ranked.first(where: isHealthy) else {
            return .failure(
                .unavailable(
                    "backend '\(backend)' has no healthy endpoint (\(endpoints.map(\.description).joined(separator: ", "))); retry shortly"
                ))
        }
        return .success(first)
    }

    /// FNV-1a, then a 64-bit finalizer: FNV alone leaves the high bits, which decide the comparison, barely
    /// touched by the last bytes, and ids often differ only there.
    static func score(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
        h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 31)
    }
}
