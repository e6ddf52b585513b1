/// A refusal or failure Sparkgate reports to a client as a gRPC status.
///
/// Messages say what was wrong and how to fix it, and never carry a token, a secret or backend internals.
/// `retryAfter` adds a `google.rpc.RetryInfo` detail, which Spark Connect clients honour by retrying.
public struct SparkgateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: GRPCStatusCode
    public var message: String
    public var retryAfter: Duration?

    public init(_ code: GRPCStatusCode, _ message: String, retryAfter: Duration? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(code.name): \(message)" }

    public static func unauthenticated(_ message: String) -> Self { .init(.unauthenticated, message) }
    public static func permissionDenied(_ message: String) -> Self { .init(.permissionDenied, message) }
    public static func resourceExhausted(_ message: String, retryAfter: Duration? = nil) -> Self {
        .init(.resourceExhausted, message, retryAfter: retryAfter)
    }
    public static func unavailable(_ message: String) -> Self { .init(.unavailable, message) }
    public static func invalidArgument(_ message: String) -> Self { .init(.invalidArgument, message) }
}
