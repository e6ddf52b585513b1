/// What the first message of a call decided: how to admit it, where it goes and how its messages change.
public struct AdmissionPlan: Sendable {
    /// The ledger's view of the call.
    public var admission: CallAdmission
    public var quotas: QuotaSettings
    public var rejectForeignSessions: Bool
    public var session: SessionKey
    /// ExecutePlan/ReattachExecute: the operation the call runs or resumes.
    public var operation: OperationKey?
    public var route: BackendRoute
    public var rewrite: RequestRewrite
    public var responseRewrite: ResponseRewrite
    /// AddArtifacts: upload bytes the first message carries, charged at admission.
    public var artifactBytes: Int
    /// ReleaseExecute with `release_all`: the whole operation is released when the backend agrees.
    public var releaseAll: Bool
    /// The session id as the client wrote it (ledger keys are lower case), for answers Sparkgate gives itself.
    public var sessionIDAsSent = ""

    public init(
        admission: CallAdmission, quotas: QuotaSettings, rejectForeignSessions: Bool, session: SessionKey, operation: OperationKey?,
        route: BackendRoute, rewrite: RequestRewrite, responseRewrite: ResponseRewrite, artifactBytes: Int, releaseAll: Bool
    ) {
        self.admission = admission
        self.quotas = quotas
        self.rejectForeignSessions = rejectForeignSessions
        self.session = session
        self.operation = operation
        self.route = route
        self.rewrite = rewrite
        self.responseRewrite = responseRewrite
        self.artifactBytes = artifactBytes
        self.releaseAll = releaseAll
    }
}
