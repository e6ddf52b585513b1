/// The SparkConnectService methods and where each keeps its routing fields.
///
/// Field numbers come from the released 4.x descriptors (`shared/reference/fields-4.3.0.txt`). A method this
/// table does not know (a future Spark release) is forwarded with the conventions every released method
/// follows: `session_id` is field 1 and `user_context` field 2 of the request, `session_id` field 1 of the response.
public enum SparkConnectMethod: Hashable, Sendable {
    case executePlan
    case analyzePlan
    case config
    case addArtifacts
    case artifactStatus
    case interrupt
    case reattachExecute
    case releaseExecute
    case releaseSession
    case fetchErrorDetails
    case cloneSession
    case getStatus
    case other(String)

    public static let servicePrefix = "/spark.connect.SparkConnectService/"

    /// The method for an HTTP/2 `:path`, or nil when the path is outside SparkConnectService.
    public init?(path: String) {
        // Byte comparisons: this runs on every call, and String's Character-level API is far slower.
        let utf8 = path.utf8
        let prefix = Self.servicePrefix.utf8
        guard utf8.count > prefix.count, utf8.starts(with: prefix) else { return nil }
        let nameBytes = utf8.dropFirst(prefix.count)
        guard !nameBytes.contains(UInt8(ascii: "/")) else { return nil }
        let name = Substring(nameBytes)
        switch name {
        case "ExecutePlan": self = .executePlan
        case "AnalyzePlan": self = .analyzePlan
        case "Config": self = .config
        case "AddArtifacts": self = .addArtifacts
        case "ArtifactStatus": self = .artifactStatus
        case "Interrupt": self = .interrupt
        case "ReattachExecute": self = .reattachExecute
        case "ReleaseExecute": self = .releaseExecute
        case "ReleaseSession": self = .releaseSession
        case "FetchErrorDetails": self = .fetchErrorDetails
        case "CloneSession": self = .cloneSession
        case "GetStatus": self = .getStatus
        default: self = .other(String(name))
        }
    }

    /// A bounded label for metrics: unknown method names collapse to "other".
    public var label: String {
        switch self {
        case .executePlan: "ExecutePlan"
        case .analyzePlan: "AnalyzePlan"
        case .config: "Config"
        case .addArtifacts: "AddArtifacts"
        case .artifactStatus: "ArtifactStatus"
        case .interrupt: "Interrupt"
        case .reattachExecute: "ReattachExecute"
        case .releaseExecute: "ReleaseExecute"
        case .releaseSession: "ReleaseSession"
        case .fetchErrorDetails: "FetchErrorDetails"
        case .cloneSession: "CloneSession"
        case .getStatus: "GetStatus"
        case .other: "other"
        }
    }

    /// The name as it appears in the path, for logs and the audit line.
    public var name: String {
        if case .other(let name) = self { return name }
        return label
    }

    public static let known: [SparkConnectMethod] = [
        .executePlan, .analyzePlan, .config, .addArtifacts, .artifactStatus, .interrupt,
        .reattachExecute, .releaseExecute, .releaseSession, .fetchErrorDetails, .cloneSession, .getStatus,
    ]

    /// Server-streaming methods keep a response stream open for the length of an operation.
    public var isServerStreaming: Bool { self == .executePlan || self == .reattachExecute }

    /// AddArtifacts is the only client-streaming method; every other method sends exactly one request message.
    public var isClientStreaming: Bool { self == .addArtifacts }

    /// Field number of `client_type` in the request.
    var clientTypeField: Int? {
        switch self {
        case .executePlan, .config, .reattachExecute, .releaseExecute, .fetchErrorDetails: 4
        case .analyzePlan, .artifactStatus, .interrupt, .releaseSession, .cloneSession, .getStatus: 3
        case .addArtifacts: 6
        case .other: nil
        }
    }

    /// Field number of `operation_id` in the request, where it is a top-level field.
    var operationIDField: Int? {
        switch self {
        case .executePlan, .interrupt: 6
        case .reattachExecute, .releaseExecute: 3
        default: nil
        }
    }

    /// Field number of `session_id` in the response.
    public var responseSessionIDField: Int {
        switch self {
        case .addArtifacts, .artifactStatus: 2
        case .fetchErrorDetails: 4
        default: 1
        }
    }
}
