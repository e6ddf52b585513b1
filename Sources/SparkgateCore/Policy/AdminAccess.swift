/// Who may use an admin path. Every path but `/healthz` (and `/readyz` with `admin.public_readiness`) needs a
/// token: the admin token for everything, the read token (`admin.read_token_file`) for GETs. Without a token,
/// a GET is answered only with `admin.allow_unauthenticated_reads` and a change only with
/// `admin.allow_unauthenticated_mutations` (and no admin token configured): the loopback admin port is
/// reachable by every local process, a tenant's engine code included.
public struct AdminAccess: Sendable {
    /// The token the request presented, as matched against the configured ones.
    public enum Presented: Sendable, Equatable {
        case none
        case admin
        case read
        /// A token that matches neither.
        case wrong
    }

    public enum Verdict: Sendable, Equatable {
        case allowed
        /// 401 or 403 with the message to send.
        case refused(status: Int, message: String)
    }

    public var adminTokenConfigured: Bool
    public var readTokenConfigured: Bool
    public var allowUnauthenticatedReads: Bool
    public var allowUnauthenticatedMutations: Bool
    public var publicReadiness: Bool

    public init(admin: SparkgateConfig.Admin, adminTokenConfigured: Bool, readTokenConfigured: Bool) {
        self.adminTokenConfigured = adminTokenConfigured
        self.readTokenConfigured = readTokenConfigured
        allowUnauthenticatedReads = admin.allowUnauthenticatedReads
        allowUnauthenticatedMutations = admin.allowUnauthenticatedMutations
        publicReadiness = admin.publicReadiness
    }

    public func decide(method: String, path: String, presented: Presented) -> Verdict {
        let reading = method == "GET" || method == "HEAD"
        if path == "/healthz" || (path == "/readyz" && reading && publicReadiness) { return .allowed }
        switch presented {
        case .admin:
            return .allowed
        case .read:
            return reading
                ? .allowed
                : .refused(
                    status: 403,
                    message:
                        "\(method) \(path) changes the gateway: the read token (admin.read_token_file) opens GETs only; use the admin token"
                )
        case .wrong:
            return .refused(
                status: 401,
                message:
                    "this admin path needs 'Authorization: Bearer <token>' with the admin token (admin.token_file) or, for GETs, the read token (admin.read_token_file)"
            )
        case .none:
            if reading {
                if allowUnauthenticatedReads { return .allowed }
                let tokens = adminTokenConfigured || readTokenConfigured
                return .refused(
                    status: 401,
                    message: tokens
                        ? "this admin path needs 'Authorization: Bearer <token>' with the admin token (admin.token_file) or the read token (admin.read_token_file)"
                        : "this admin path lists sessions, users and engines to whoever asks: set admin.token_file or admin.read_token_file and send 'Authorization: Bearer <token>' (or admin.allow_unauthenticated_reads: true on a host no tenant's code runs on)"
                )
            }
            if adminTokenConfigured {
                return .refused(
                    status: 401,
                    message: "this admin path needs 'Authorization: Bearer <admin token>' (admin.token_file)")
            }
            if allowUnauthenticatedMutations { return .allowed }
            return .refused(
                status: 403,
                message:
                    "\(method) \(path) changes the gateway and needs an admin token: set admin.token_file (or admin.allow_unauthenticated_mutations: true on a trusted host)"
            )
        }
    }
}
