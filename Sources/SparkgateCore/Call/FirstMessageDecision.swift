/// What Sparkgate knows when a call's first message arrives, besides the message itself.
public struct FirstMessageContext {
    public var method: SparkConnectMethod
    public var identity: Identity
    public var team: SparkgateConfig.Team
    public var policy: CallPolicy
    /// A graceful shutdown is under way: no new operation may start.
    public var draining: Bool
    /// Why Sparkgate itself ended an operation recently, if it did (for a ReattachExecute to it).
    public var endedReason: (OperationKey) -> SparkgateError?
    /// A fresh random UUID (operation ids and clone ids Sparkgate assigns).
    public var randomUUID: () -> String

    public init(
        method: SparkConnectMethod, identity: Identity, team: SparkgateConfig.Team, policy: CallPolicy, draining: Bool,
        endedReason: @escaping (OperationKey) -> SparkgateError? = { _ in nil }, randomUUID: @escaping () -> String = { UUIDText.random() }
    ) {
        self.method = method
        self.identity = identity
        self.team = team
        self.policy = policy
        self.draining = draining
        self.endedReason = endedReason
        self.randomUUID = randomUUID
    }
}

/// The decision on a call's first message, top to bottom: the envelope's ids, shutdown, config policy,
/// namespacing, clone ids, operations Sparkgate ended, and the admission it asks the ledger for.
public enum FirstMessageDecision {
    public static func decide(_ envelope: RequestEnvelope, _ c: FirstMessageContext) -> Result<AdmissionPlan, CallRefusal> {
        let method = c.method
        let identity = c.identity
        guard let sessionID = envelope.sessionID, !sessionID.isEmpty else {
            return .failure(CallRefusal(.invalidArgument("the request has no session_id; Spark Connect clients send one on every call"), reason: "no_session"))
        }
        guard UUIDText.isCanonical(sessionID) else {
            return .failure(CallRefusal(.invalidArgument("session_id must be a UUID like 00112233-4455-6677-8899-aabbccddeeff"), reason: "bad_session"))
        }
        if method == .executePlan, c.draining {
            return .failure(CallRefusal(.unavailable("Sparkgate is shutting down and starts no new operations; retry to reach another instance"), reason: "draining"))
        }
        if method == .config, let op = envelope.config, op.writes, let denied = c.policy.configPolicy.firstDenied(in: op.keys) {
            return .failure(CallRefusal(
                .permissionDenied("config key '\(ClaimsPolicy.clipped(denied))' is denied by this gateway's config_policy; it cannot be set or unset"),
                reason: "config_denied"))
        }

        let namespace = c.policy.namespace
        let backendSessionID = namespace?.backendID(team: identity.team, user: identity.user, clientSessionID: sessionID) ?? sessionID
        var rewrite = RequestRewrite(userID: identity.user, backendSessionID: namespace == nil ? nil : backendSessionID)
        var responseRewrite = ResponseRewrite(clientSessionID: namespace == nil ? nil : sessionID)
        if method == .executePlan, envelope.operationID == nil {
            rewrite.insertedOperationID = c.randomUUID()
        }
        if method == .cloneSession {
            if let newID = envelope.newSessionID {
                guard UUIDText.isCanonical(newID) else {
                    return .failure(CallRefusal(.invalidArgument("new_session_id must be a UUID"), reason: "bad_session"))
                }
                if let namespace {
                    rewrite.backendNewSessionID = namespace.backendID(team: identity.team, user: identity.user, clientSessionID: newID)
                    responseRewrite.clientNewSessionID = newID
                }
            } else if let namespace {
                // The backend would pick the clone's id and the client would send it back as its own: pick it
                // here so it is namespaced like every other id.
                let newID = c.randomUUID()
                rewrite.backendNewSessionID = namespace.backendID(team: identity.team, user: identity.user, clientSessionID: newID)
                responseRewrite.clientNewSessionID = newID
            }
        }
        if method == .config, !c.policy.configPolicy.denyKeys.isEmpty {
            responseRewrite.configPolicy = c.policy.configPolicy
            responseRewrite.dropDeniedPairs = envelope.config?.kind == .getAll
        }

        let caller = UserKey(identity)
        let session = SessionKey(owner: caller, clientSessionID: sessionID)
        let operationID = rewrite.insertedOperationID ?? envelope.operationID
        var operation: OperationKey?
        if let operationID, method == .executePlan || method == .reattachExecute {
            operation = OperationKey(session: session, operationID: operationID)
        }
        if method == .reattachExecute, let operation, let reason = c.endedReason(operation) {
            // Sparkgate ended this operation between two of its streams: say why, not Spark's generic error.
            return .failure(CallRefusal(reason, reason: "operation_ended"))
        }

        var admission = CallAdmission(caller: caller, method: method, clientSessionID: sessionID, backendSessionID: backendSessionID, backend: c.team.backend)
        admission.operationID = operationID
        admission.reattachable = envelope.reattachable
        admission.tags = envelope.tags
        admission.clientType = envelope.clientType.map { String($0.prefix(256)) }
        return .success(AdmissionPlan(
            admission: admission, quotas: c.team.quotas, rejectForeignSessions: c.policy.rejectForeignSessionIDs, session: session,
            operation: operation,
            route: BackendRoute(backend: c.team.backend, backendSessionID: backendSessionID),
            rewrite: rewrite, responseRewrite: responseRewrite,
            artifactBytes: method == .addArtifacts ? envelope.artifactBytes : 0,
            releaseAll: method == .releaseExecute && envelope.releaseAll))
    }
}
