/// What the first message of a call decided: how to admit it, where it goes and how its messages change.
/// A class, made once per call and never changed: the call's phases share it rather than copy its strings.
public final class AdmissionPlan: Sendable, Equatable {
    /// The ledger's view of the call.
    public let admission: CallAdmission
    public let quotas: QuotaSettings
    public let rejectForeignSessions: Bool
    public let session: SessionKey
    /// ExecutePlan/ReattachExecute: the operation the call runs or resumes.
    public let operation: OperationKey?
    public let route: BackendRoute
    public let rewrite: RequestRewrite
    public let responseRewrite: ResponseRewrite
    /// AddArtifacts: upload bytes the first message carries, charged at admission.
    public let artifactBytes: Int
    /// ReleaseExecute with `release_all`: the whole operation is released when the backend agrees.
    public let releaseAll: Bool
    /// The session id as the client wrote it (ledger keys are lower case), for answers Sparkgate gives itself.
    public let sessionIDAsSent: String

    public init(
        admission: CallAdmission, quotas: QuotaSettings, rejectForeignSessions: Bool, session: SessionKey,
        operation: OperationKey?,
        route: BackendRoute, rewrite: RequestRewrite, responseRewrite: ResponseRewrite, artifactBytes: Int,
        releaseAll: Bool,
        sessionIDAsSent: String = ""
    ) {
        self.sessionIDAsSent = sessionIDAsSent
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

    /// One plan per call, never changed after it is made: the same plan is the same object.
    public static func == (lhs: AdmissionPlan, rhs: AdmissionPlan) -> Bool { lhs === rhs }
}
