/// The parts of a request's HEADERS that decide what happens to it.
public struct RequestHead: Sendable, Equatable {
    public var method: String?
    public var path: String?
    public var contentType: String?
    public var authorization: [Substring] = []
    /// Spark's JVM client 4.0.0 to 4.0.4 and 4.1.0 to 4.1.3 sends its token as `authentication: Bearer <JWT>`.
    public var authentication: [Substring] = []
    public var timeout: Duration?
    public var timeoutText: String?
    /// The header list's size as HTTP/2 counts it (name + value + 32 per field, RFC 9113 §6.5.2).
    public var headerBytes = 0

    public init() {}

    /// Adds one header as it arrives.
    public mutating func add(name: String, value: String) {
        let length = name.utf8.count
        headerBytes += length + value.utf8.count + 32
        // The length first: most fields are none of these, and a String comparison that fails is the slow one.
        switch length {
        case 5 where name == ":path": path = value
        case 7 where name == ":method": method = value
        case 12 where name == "content-type": contentType = value
        case 12 where name == "grpc-timeout":
            timeoutText = value
            timeout = GRPCTimeout.parse(value)
        case 13 where name == "authorization": authorization.append(Substring(value))
        case 14 where name == "authentication": authentication.append(Substring(value))
        default: break
        }
    }

    /// The Spark Connect method this request calls, or the error to answer it with.
    public func validate() -> Result<SparkConnectMethod, SparkgateError> {
        guard method == "POST" else {
            return .failure(SparkgateError(.unimplemented, "gRPC requests must use POST, not \(method ?? "no method")"))
        }
        guard let contentType, contentType.hasPrefix("application/grpc"), !contentType.hasPrefix("application/grpc-web")
        else {
            return .failure(
                SparkgateError(.invalidArgument, "content-type must be application/grpc, not '\(contentType ?? "")'"))
        }
        if let text = timeoutText, timeout == nil {
            return .failure(.invalidArgument("grpc-timeout '\(text.prefix(16))' is not valid"))
        }
        guard let path, let m = SparkConnectMethod(path: path) else {
            return .failure(
                SparkgateError(
                    .unimplemented,
                    "Sparkgate serves only spark.connect.SparkConnectService, not \(path?.prefix(128) ?? "no path")"))
        }
        return .success(m)
    }
}
