/// The `grpc-status-details-bin` payload: a `google.rpc.Status`, with a `google.rpc.RetryInfo` detail when
/// the client should retry. Spark Connect clients (PySpark's `DefaultPolicy`) retry any error carrying one.
public enum GRPCStatusDetails {
    static let retryInfoTypeURL = "type.googleapis.com/google.rpc.RetryInfo"

    /// The serialized `google.rpc.Status`, or nil when there is nothing beyond code and message to say.
    public static func encode(_ error: SparkgateError) -> [UInt8]? {
        guard let retryAfter = error.retryAfter else { return nil }
        // google.protobuf.Duration { int64 seconds = 1; int32 nanos = 2; }
        let (seconds, attoseconds) = retryAfter.components
        var duration: [UInt8] = []
        if seconds > 0 {
            WireEncoding.appendTag(field: 1, wireType: .varint, to: &duration)
            WireEncoding.appendVarint(UInt64(seconds), to: &duration)
        }
        let nanos = attoseconds / 1_000_000_000
        if nanos > 0 {
            WireEncoding.appendTag(field: 2, wireType: .varint, to: &duration)
            WireEncoding.appendVarint(UInt64(nanos), to: &duration)
        }
        // google.rpc.RetryInfo { Duration retry_delay = 1; }
        var retryInfo: [UInt8] = []
        WireEncoding.appendLengthDelimited(field: 1, duration, to: &retryInfo)
        // google.protobuf.Any { string type_url = 1; bytes value = 2; }
        var any: [UInt8] = []
        WireEncoding.appendString(field: 1, retryInfoTypeURL, to: &any)
        WireEncoding.appendLengthDelimited(field: 2, retryInfo, to: &any)
        // google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3; }
        var status: [UInt8] = []
        WireEncoding.appendTag(field: 1, wireType: .varint, to: &status)
        WireEncoding.appendVarint(UInt64(error.code.rawValue), to: &status)
        WireEncoding.appendString(field: 2, error.message, to: &status)
        WireEncoding.appendLengthDelimited(field: 3, any, to: &status)
        return status
    }
}
