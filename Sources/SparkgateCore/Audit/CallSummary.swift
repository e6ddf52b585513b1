/// What one RPC did, as the audit log and the metrics record it. It carries names and counts only:
/// never a token, a secret or query text.
public struct CallSummary: Sendable, Equatable {
    public var start: Double
    public var durationSeconds: Double
    public var user: String?
    public var team: String?
    public var sessionID: String?
    public var backendSessionID: String?
    public var operationID: String?
    public var method: String
    public var status: String
    public var requestBytes: Int
    public var resultBytes: Int
    public var responseBytes: Int
    public var rows: Int64
    public var clientType: String?
    public var peer: String
    public var backend: String?
    /// Why the call did not end OK (Sparkgate's refusal, or `backend_error`), or what Sparkgate answered itself.
    public var reason: String?
    /// The backend's error class (`google.rpc.ErrorInfo.reason`, e.g. `INVALID_HANDLE.SESSION_CLOSED`), when it
    /// sent one: structured, never message text.
    public var errorClass: String?

    public init(start: Double, method: String, peer: String) {
        self.start = start
        self.durationSeconds = 0
        self.method = method
        self.status = "OK"
        self.requestBytes = 0
        self.resultBytes = 0
        self.responseBytes = 0
        self.rows = 0
        self.peer = peer
    }

    /// One JSON object on one line.
    public var jsonLine: String {
        var bytes: [UInt8] = []
        appendJSONLine(to: &bytes)
        bytes.removeLast()  // the newline
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// JSON string escaping (RFC 8259), without Foundation's encoder on the per-RPC path.
public enum JSONText {
    public static func appendEscaped(_ s: String, to out: inout String) {
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
    }

    public static func quoted(_ s: String) -> String {
        var out = "\""
        appendEscaped(s, to: &out)
        return out + "\""
    }
}
