extension CallSummary {
    /// One JSON object on one line, as UTF-8 bytes (built without intermediate strings: it runs per RPC).
    public func appendJSONLine(to out: inout [UInt8]) {
        out.append(contentsOf: #"{"time":""#.utf8)
        Timestamp.appendRFC3339Millis(start, to: &out)
        out.append(UInt8(ascii: "\""))
        func field(_ name: StaticString, _ value: String?) {
            guard let value else { return }
            out.append(contentsOf: #",""#.utf8)
            name.withUTF8Buffer { out.append(contentsOf: $0) }
            out.append(contentsOf: #"":""#.utf8)
            JSONText.appendEscaped(value, to: &out)
            out.append(UInt8(ascii: "\""))
        }
        func number(_ name: StaticString, _ value: some BinaryInteger) {
            out.append(contentsOf: #",""#.utf8)
            name.withUTF8Buffer { out.append(contentsOf: $0) }
            out.append(contentsOf: #"":"#.utf8)
            JSONText.appendInteger(Int64(value), to: &out)
        }
        field("user", user)
        field("team", team)
        field("session_id", sessionID)
        field("backend_session_id", backendSessionID)
        field("operation_id", operationID)
        field("method", method)
        field("status", status)
        number("request_bytes", requestBytes)
        number("result_bytes", resultBytes)
        number("response_bytes", responseBytes)
        number("rows", rows)
        // Milliseconds with three decimals (microsecond resolution).
        out.append(contentsOf: #","duration_ms":"#.utf8)
        let micros = Int64((durationSeconds * 1_000_000).rounded())
        JSONText.appendInteger(micros / 1000, to: &out)
        out.append(UInt8(ascii: "."))
        let frac = micros % 1000
        out.append(UInt8(ascii: "0") + UInt8(frac / 100))
        out.append(UInt8(ascii: "0") + UInt8(frac / 10 % 10))
        out.append(UInt8(ascii: "0") + UInt8(frac % 10))
        field("client_type", clientType)
        field("peer", peer)
        field("backend", backend)
        field("reason", reason)
        field("error_class", errorClass.map { String($0.prefix(128)) })
        out.append(contentsOf: "}\n".utf8)
    }
}

extension JSONText {
    public static func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        if value < 0 {
            out.append(UInt8(ascii: "-"))
            appendInteger(value == .min ? .max : -value, to: &out)
            return
        }
        if value < 10 {
            out.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        appendInteger(value / 10, to: &out)
        out.append(UInt8(ascii: "0") + UInt8(value % 10))
    }

    /// Escapes into bytes; strings with nothing to escape (the usual case) are copied in one go.
    public static func appendEscaped(_ s: String, to out: inout [UInt8]) {
        let utf8 = s.utf8
        if utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x22 && $0 != 0x5C && $0 != 0x7F }) {
            out.append(contentsOf: utf8)
            return
        }
        var escaped = ""
        appendEscaped(s, to: &escaped)
        out.append(contentsOf: escaped.utf8)
    }
}
