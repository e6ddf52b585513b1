/// Where a call on a backend with fixed endpoints goes, and what must be recorded so that every replica
/// sends the session's later calls to the same place. Pure: the placement, the health view and the
/// endpoints are its inputs.
public enum SessionRouting {
    public struct Decision: Sendable, Equatable {
        public var endpoint: HostPort
        /// Where the session now lives, when it must be recorded: its first placement, a placement the shared
        /// state lost, or a move off a failed endpoint.
        public var record: PlacementChange?

        public init(endpoint: HostPort, record: PlacementChange? = nil) {
            self.endpoint = endpoint
            self.record = record
        }
    }

    /// A change to a session's recorded placement.
    public enum PlacementChange: Sendable, Equatable {
        /// Record this placement unless another replica recorded one first (which then wins).
        case claim(SessionPlacement)
        /// Replace the recorded placement (the operator allows moving sessions off failed endpoints).
        case move(SessionPlacement)

        public var placement: SessionPlacement {
            switch self {
            case .claim(let p), .move(let p): p
            }
        }
    }

    /// The endpoint for a call of a session that lives at `placement` (empty for a new session); `recorded`
    /// says whether that placement is already where every replica reads it.
    public static func endpoint(
        _ endpoints: [HostPort], backend: String, backendSessionID: String, placement: SessionPlacement, recorded: Bool,
        isHealthy: (HostPort) -> Bool,
        moveSessions: Bool
    ) -> Result<Decision, SparkgateError> {
        guard !endpoints.isEmpty else { return .failure(.unavailable("backend '\(backend)' is not configured")) }
        // One endpoint: every replica agrees without a record.
        if endpoints.count == 1 { return .success(Decision(endpoint: endpoints[0])) }
        let pinned = placement.endpoint.flatMap { endpoints.contains($0) ? $0 : nil }
        switch EndpointSelection.select(
            endpoints, for: backendSessionID, pinned: pinned, isHealthy: isHealthy, moveSessions: moveSessions,
            backend: backend)
        {
        case .failure(let error):
            return .failure(error)
        case .success(let chosen):
            let placed = SessionPlacement(endpoint: chosen, engine: placement.engine)
            if chosen == pinned { return .success(Decision(endpoint: chosen, record: recorded ? nil : .claim(placed))) }
            // A session placed on an endpoint that was moved off, or is no longer configured, is moved for good.
            return .success(
                Decision(endpoint: chosen, record: placement.endpoint == nil ? .claim(placed) : .move(placed)))
        }
    }
}
