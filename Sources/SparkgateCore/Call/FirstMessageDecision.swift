/// What Sparkgate knows when a call's first message arrives, besides the message itself.
public struct FirstMessageContext {
    public var method: SparkConnectMethod
    public var identity: Identity
    public var team: SparkgateConfig.Team
    public var policy: CallPolicy
    /// A graceful shutdown is under way: no new operation may start.
    public var draining: Bool
    /// A fresh random UUID (operation ids and clone ids Sparkgate assigns).
    public var randomUUID: () -> String
    /// The connection's last derived backend session id, when the I/O layer keeps one.
    public var backendIDs: SessionNamespace.Memo?

    public init(
        method: SparkConnectMethod, identity: Identity, team: SparkgateConfig.Team, policy: CallPolicy, draining: Bool,
        randomUUID: @escaping () -> String = { UUIDText.random() }, backendIDs: SessionNamespace.Memo? = nil
    ) {
        self.method = method
        self.identity = identity
        self.team = team
        self.policy = policy
        self.draining = draining
        self.randomUUID = randomUUID
        self.backendIDs = backendIDs
    }
}

/// The decision on a call's first message, top to bottom: the envelope's ids, shutdown, config policy,
/// namespacing, clone ids, and the admission it asks the ledger for.
public enum FirstMessageDecision {
    public static func decide(
        _ envelope: RequestEnvelope, _ c: FirstMessageContext
    ) -> Result<AdmissionPlan, CallRefusal> {
        let method = c.method
        let identity = c.identity
        guard let sessionID = envelope.sessionID, !sessionID.isEmpty else {
            return .failure(
                CallRefusal(
                    .invalidArgument(
                        "the request has no session_id; Spark Connect clients send one on every call\(sentBy(envelope))"
                    ), reason: "no_session"))
        }
        guard UUIDText.isCanonical(sessionID) else {
            return .failure(
                CallRefusal(
                    .invalidArgument(
                        "session_id must be a UUID like 00112233-4455-6677-8899-aabbccddeeff\(sentBy(envelope))"),
                    reason: "bad_session"))
        }
        if method == .executePlan, c.draining {
            return .failure(
                CallRefusal(
                    .unavailable(
                        "Sparkgate is shutting down and starts no new operations; retry to reach another instance"),
                    reason: "draining"))
        }
        if method == .config, let op = envelope.config, op.writes,
            let denied = c.policy.configPolicy.firstDenied(in: op.keys)
        {
            return .failure(
                CallRefusal(
                    .permissionDenied(
                        "config key '\(ClaimsPolicy.clipped(denied))' is denied by this gateway's config_policy; it cannot be set or unset"
                    ),
                    reason: "config_denied"))
        }
        if let plan = envelope.plan, let refusal = refusal(for: plan, c.policy.configPolicy) {
            return .failure(refusal)
        }
        if let id = envelope.operationID, !UUIDText.isCanonical(id) {
            return .failure(
                CallRefusal(
                    .invalidArgument(
                        "operation_id must be a UUID like 00112233-4455-6677-8899-aabbccddeeff (Spark requires one)\(sentBy(envelope))"
                    ), reason: "bad_operation"))
        }

        // Session and operation ids are compared in canonical lower case: Spark takes either case for one id.
        let loweredSessionID = UUIDText.lowercased(sessionID)
        let namespace = c.policy.namespace
        let backendSessionID =
            namespace.map { namespace in
                c.backendIDs?.backendID(
                    namespace, team: identity.team, user: identity.user, clientSessionID: loweredSessionID)
                    ?? namespace.backendID(team: identity.team, user: identity.user, clientSessionID: loweredSessionID)
            } ?? sessionID
        var rewrite = RequestRewrite(userID: identity.user, backendSessionID: namespace == nil ? nil : backendSessionID)
        var responseRewrite = ResponseRewrite(clientSessionID: namespace == nil ? nil : sessionID)
        if method == .executePlan, envelope.operationID == nil {
            rewrite.insertedOperationID = c.randomUUID()
        }
        if method == .cloneSession {
            if let newID = envelope.newSessionID {
                guard UUIDText.isCanonical(newID) else {
                    return .failure(
                        CallRefusal(
                            .invalidArgument("new_session_id must be a UUID\(sentBy(envelope))"), reason: "bad_session")
                    )
                }
                if let namespace {
                    rewrite.backendNewSessionID = namespace.backendID(
                        team: identity.team, user: identity.user, clientSessionID: newID)
                    responseRewrite.clientNewSessionID = newID
                }
            } else if let namespace {
                // The backend would pick the clone's id and the client would send it back as its own: pick it
                // here so it is namespaced like every other id.
                let newID = c.randomUUID()
                rewrite.backendNewSessionID = namespace.backendID(
                    team: identity.team, user: identity.user, clientSessionID: newID)
                responseRewrite.clientNewSessionID = newID
            }
        }
        if method == .config, !c.policy.configPolicy.denyKeys.isEmpty {
            responseRewrite.configPolicy = c.policy.configPolicy
            responseRewrite.dropDeniedPairs = envelope.config?.kind == .getAll
        }
        if method == .config { responseRewrite.overrides = c.policy.configOverrides }

        let caller = UserKey(identity)
        let session = SessionKey(owner: caller, clientSessionID: loweredSessionID)
        let operationID = (rewrite.insertedOperationID ?? envelope.operationID).map(UUIDText.lowercased)
        var operation: OperationKey?
        if let operationID, method == .executePlan || method == .reattachExecute {
            operation = OperationKey(session: session, operationID: operationID)
        }
        var admission = CallAdmission(
            caller: caller, method: method, clientSessionID: session.clientSessionID,
            backendSessionID: backendSessionID, backend: c.team.backend)
        admission.operationID = operationID
        admission.reattachable = envelope.reattachable
        admission.tags = envelope.tags
        admission.clientType = envelope.clientType.map { String($0.prefix(256)) }
        admission.artifactBytes = method == .addArtifacts ? envelope.artifactBytes : 0
        let plan = AdmissionPlan(
            admission: admission, quotas: c.team.quotas, rejectForeignSessions: c.policy.rejectForeignSessionIDs,
            session: session,
            operation: operation,
            route: BackendRoute(backend: c.team.backend, backendSessionID: backendSessionID),
            rewrite: rewrite, responseRewrite: responseRewrite,
            artifactBytes: method == .addArtifacts ? envelope.artifactBytes : 0,
            releaseAll: method == .releaseExecute && envelope.releaseAll, sessionIDAsSent: sessionID)
        return .success(plan)
    }

    /// Which client sent a message Sparkgate cannot route: its version tells an operator whether an old or
    /// unusual client is the cause.
    static func sentBy(_ envelope: RequestEnvelope) -> String {
        guard let clientType = envelope.clientType, !clientType.isEmpty else {
            return " (the request names no client_type)"
        }
        return " (sent by client_type '\(ClaimsPolicy.clipped(clientType))')"
    }

    /// What a plan's SQL may not do: set, reset or show a denied key, run SQL built at run time, or hide from
    /// inspection. Nothing to refuse when no key is denied.
    package static func refusal(for plan: PlanInspection, _ policy: ConfigPolicy) -> CallRefusal? {
        guard !policy.denyKeys.isEmpty else { return nil }
        if plan.exhausted {
            return CallRefusal(
                .invalidArgument("the plan nests too deeply for Sparkgate to inspect its SQL; simplify it"),
                reason: "plan_uninspectable")
        }
        if plan.compressed {
            return CallRefusal(
                .invalidArgument(
                    "Sparkgate reads plans to enforce its config_policy and cannot read a compressed one; turn plan compression off in the client (Sparkgate tells PySpark the threshold is -1)"
                ),
                reason: "plan_compressed")
        }
        for statement in plan.statements {
            switch statement {
            case .set(let key) where policy.denies(key), .reset(let key) where policy.denies(key):
                return CallRefusal(
                    .permissionDenied(
                        "config key '\(ClaimsPolicy.clipped(key))' is denied by this gateway's config_policy; SQL SET and RESET of it are refused"
                    ),
                    reason: "config_denied")
            case .executeImmediate:
                return CallRefusal(
                    .permissionDenied(
                        "EXECUTE IMMEDIATE is refused by this gateway: it runs SQL built at run time, which Sparkgate cannot check against its config_policy"
                    ),
                    reason: "config_denied")
            case .unreadable(let what):
                return CallRefusal(
                    .invalidArgument(
                        "Sparkgate cannot read '\(ClaimsPolicy.clipped(what))' unambiguously; write it as SET key=value with a plain or backtick-quoted key and no comment inside"
                    ),
                    reason: "sql_unreadable")
            case .set, .reset:
                continue
            }
        }
        return nil
    }
}
