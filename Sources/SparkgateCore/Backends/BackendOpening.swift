/// Opening one call's backend stream, as a value: where the call goes, what is recorded so that every replica
/// sends the session's later calls to the same place, and whether a failed connection counts against the
/// endpoint's health. Its inputs (the endpoints' live health, what the shared state recorded, the engine a
/// launch pool gave) arrive as answers to the steps it asks for; it does no I/O.
public struct BackendOpening: Sendable {
    public enum Step: Sendable, Equatable {
        /// Read which of these endpoints are unhealthy now (answer: `healthRead`).
        case readHealth(backend: String, endpoints: [HostPort])
        /// Get the engine of a launch pool (answer: `engineReady`; a failure ends the opening).
        case findEngine(EngineRequest)
        /// Record the session's placement and wait for what was recorded (answer: `placementRecorded`).
        case recordPlacement(PlacementRecord)
        /// Open the stream; `alongside` is a placement to record without waiting for it.
        case openStream(BackendStreamRequest, alongside: PlacementRecord?)
        case fail(SparkgateError)
        /// An answer nobody asked for (the I/O layer and the opening disagree): the call cannot go on.
        case outOfOrder(String)
    }

    /// How many times another replica's placement may send routing round again before the call gives up: each
    /// round is a Redis write, and a placement that keeps changing under a call is not worth chasing.
    static let maxPlacementRounds = 3

    public private(set) var target: BackendTarget
    private let entry: BackendDirectory.Entry?
    private var unhealthy: [HostPort] = []
    /// The placement asked to be recorded, and the endpoint it names.
    private var pending: (change: SessionRouting.PlacementChange, endpoint: HostPort)?
    private var rounds = 0
    /// The stream being opened once decided, and whether its failure counts against its endpoint's health
    /// (a launched engine has its own watcher instead).
    public private(set) var stream: BackendStreamRequest?
    private var passiveHealth = false

    public init(target: BackendTarget, backend: BackendDirectory.Entry?) {
        self.target = target
        self.entry = backend
    }

    public mutating func start() -> Step {
        guard let entry else { return .fail(.unavailable("backend '\(target.route.backend)' is not configured")) }
        if let launch = entry.settings.launch {
            let owner = target.session.owner
            return .findEngine(
                EngineRequest(
                    key: launch.shareKey(backend: target.route.backend, team: owner.team, user: owner.user),
                    settings: launch, bound: target.placement.engine))
        }
        // One endpoint: nothing to choose between, so its health is not read.
        if entry.settings.endpoints.count > 1 {
            return .readHealth(backend: target.route.backend, endpoints: entry.settings.endpoints)
        }
        return route(entry)
    }

    public mutating func healthRead(unhealthy: [HostPort]) -> Step {
        guard let entry, entry.settings.launch == nil, stream == nil, pending == nil else {
            return .outOfOrder("an endpoint health reading")
        }
        self.unhealthy = unhealthy
        return route(entry)
    }

    /// What the shared state holds after the record: the placement asked for, or another replica's earlier
    /// one, which wins (routing goes round again with it).
    public mutating func placementRecorded(_ placed: SessionPlacement) -> Step {
        guard let entry, let (change, endpoint) = pending else {
            return .outOfOrder("a placement nobody asked to record")
        }
        pending = nil
        if placed == change.placement {
            return .openStream(open(entry, at: endpoint, token: entry.token, passiveHealth: true), alongside: nil)
        }
        rounds += 1
        guard rounds < Self.maxPlacementRounds else {
            return .fail(
                .unavailable(
                    "the placement of this session on backend '\(target.route.backend)' kept changing while the call "
                        + "was routed; retry"))
        }
        target.placement = placed
        target.placementRecorded = true
        return route(entry)
    }

    public mutating func engineReady(_ engine: ReadyEngine) -> Step {
        guard let entry, entry.settings.launch != nil, stream == nil else {
            return .outOfOrder("an engine nobody asked for")
        }
        let claim =
            target.placement.engine == engine.id
            ? nil
            : PlacementRecord(
                session: target.session, change: .claim(SessionPlacement(endpoint: engine.address, engine: engine.id)),
                sessionIdleSeconds: target.sessionIdleSeconds)
        return .openStream(
            open(entry, at: engine.address, token: engine.token, passiveHealth: false), alongside: claim)
    }

    /// The stream did not open: what the client is told, and the endpoint failure to count, if it counts.
    public func streamFailed(reason: String) -> (error: SparkgateError, endpointFailure: EndpointFailure?) {
        guard let stream, let entry else { return (.unavailable("no backend stream was being opened"), nil) }
        let error = SparkgateError.unavailable(
            "backend '\(stream.backend)' (\(stream.address)) is unreachable: \(reason); retry shortly")
        guard passiveHealth else { return (error, nil) }
        return (
            error,
            EndpointFailure(
                backend: stream.backend, endpoint: stream.address, reason: reason, settings: entry.settings.health)
        )
    }

    private mutating func route(_ entry: BackendDirectory.Entry) -> Step {
        let unhealthy = self.unhealthy
        let decided = SessionRouting.endpoint(
            entry.settings.endpoints, backend: target.route.backend, backendSessionID: target.route.backendSessionID,
            placement: target.placement, recorded: target.placementRecorded,
            isHealthy: { !unhealthy.contains($0) }, moveSessions: entry.settings.health.moveSessions)
        switch decided {
        case .failure(let error):
            return .fail(error)
        case .success(let decision):
            guard let change = decision.record else {
                return .openStream(
                    open(entry, at: decision.endpoint, token: entry.token, passiveHealth: true), alongside: nil)
            }
            pending = (change, decision.endpoint)
            return .recordPlacement(
                PlacementRecord(
                    session: target.session, change: change, sessionIdleSeconds: target.sessionIdleSeconds))
        }
    }

    private mutating func open(
        _ entry: BackendDirectory.Entry, at address: HostPort, token: String?, passiveHealth: Bool
    ) -> BackendStreamRequest {
        let request = BackendStreamRequest(
            backend: target.route.backend, address: address, tls: entry.settings.launch == nil && entry.settings.tls,
            token: token, connectTimeoutSeconds: entry.settings.connectTimeoutSeconds)
        stream = request
        self.passiveHealth = passiveHealth
        return request
    }
}
