import Foundation

/// How the backend ended a call: its gRPC status and, for Spark's own errors, the structured error class.
///
/// Sparkgate's bookkeeping decides from `errorClass` (read from `google.rpc.ErrorInfo` in
/// `grpc-status-details-bin`), never from `message`: the message can echo text a user chose.
public struct BackendStatus: Sendable, Equatable {
    public var code: GRPCStatusCode
    public var message: String
    /// Spark's `errorClass` (for example `INVALID_HANDLE.SESSION_CLOSED`), when the details carry one.
    public var errorClass: String?

    public init(code: GRPCStatusCode, message: String = "", errorClass: String? = nil) {
        self.code = code
        self.message = message
        self.errorClass = errorClass
    }

    /// Reads the status from trailer values as they arrive on the wire (`grpc-status`, percent-encoded
    /// `grpc-message`, base64 `grpc-status-details-bin`). A missing or unknown status reads as UNKNOWN.
    public static func parse(status: String?, message: String?, details: String?) -> BackendStatus {
        let code = status.flatMap { Int($0) }.flatMap(GRPCStatusCode.init(rawValue:)) ?? .unknown
        let text = message.map(GRPCStatusMessage.decode) ?? ""
        let errorClass = details.flatMap(decodeBinaryMetadata).flatMap { bytes in
            bytes.withUnsafeBytes { GRPCErrorInfo.errorClass(inStatus: $0) }
        }
        return BackendStatus(code: code, message: text, errorClass: errorClass)
    }
}

/// A `-bin` metadata value: standard base64, which gRPC may send without padding.
func decodeBinaryMetadata(_ text: String) -> Data? {
    let padding = (4 - text.utf8.count % 4) % 4
    return Data(base64Encoded: padding == 0 ? text : text + String(repeating: "=", count: padding))
}

/// The parts of `google.rpc.Status` → `google.rpc.ErrorInfo` Sparkgate reads, at the wire level.
public enum GRPCErrorInfo {
    static let errorInfoTypeURL = "type.googleapis.com/google.rpc.ErrorInfo"

    /// The `errorClass` metadata entry of the first ErrorInfo detail of a serialized `google.rpc.Status`.
    /// Malformed input reads as nil, never as a guess.
    public static func errorClass(inStatus bytes: UnsafeRawBufferPointer) -> String? {
        do {
            var status = WireCursor(bytes)
            while let detail = try status.next() {
                // Status.details = 3 (repeated google.protobuf.Any)
                guard detail.number == 3, detail.wireType == .lengthDelimited else { continue }
                var any = status.nested(detail)
                var typeURL: String?
                var value: WireField?
                while let f = try any.next() {
                    guard f.wireType == .lengthDelimited else { continue }
                    if f.number == 1 { typeURL = status.string(f) } else if f.number == 2 { value = f }
                }
                guard typeURL == errorInfoTypeURL, let value else { continue }
                return try metadataValue("errorClass", inErrorInfo: status.nested(value))
            }
        } catch {
            return nil
        }
        return nil
    }

    /// ErrorInfo.metadata = 3 (map<string, string>: repeated entries of key 1, value 2); the last entry wins.
    private static func metadataValue(_ key: String, inErrorInfo info: WireCursor) throws(WireError) -> String? {
        var fields = info
        var found: String?
        while let entry = try fields.next() {
            guard entry.number == 3, entry.wireType == .lengthDelimited else { continue }
            var pair = info.nested(entry)
            var k: String?
            var v = ""
            while let f = try pair.next() {
                guard f.wireType == .lengthDelimited else { continue }
                if f.number == 1 { k = info.string(f) } else if f.number == 2 { v = info.string(f) }
            }
            if k == key { found = v }
        }
        return found
    }
}
