import SparkgateCore

/// An admin request target split into its path and query parameters, percent-decoded at the byte level.
/// Malformed input (a bad escape, a path that is not absolute, invalid UTF-8 after decoding) is a reason to
/// answer 400, never a trap.
public enum AdminURI {
    public struct Parsed: Sendable, Equatable {
        public var path: String
        public var query: [String: String]
    }

    public static func parse(_ target: String) -> Result<Parsed, AdminURIError> {
        let bytes = Array(target.utf8)
        guard bytes.first == UInt8(ascii: "/") else {
            return .failure(AdminURIError("the request target must be an absolute path"))
        }
        let question = bytes.firstIndex(of: UInt8(ascii: "?")) ?? bytes.count
        guard let path = decode(bytes[..<question], plusIsSpace: false) else {
            return .failure(AdminURIError("the path has a malformed %-escape"))
        }
        var query: [String: String] = [:]
        if question < bytes.count {
            for pair in bytes[(question + 1)...].split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
                let equals = pair.firstIndex(of: UInt8(ascii: "=")) ?? pair.endIndex
                guard let key = decode(pair[pair.startIndex..<equals], plusIsSpace: true),
                    let value = decode(equals < pair.endIndex ? pair[(equals + 1)...] : [][...], plusIsSpace: true)
                else { return .failure(AdminURIError("the query has a malformed %-escape")) }
                guard !key.isEmpty else { continue }
                query[key] = value
            }
        }
        return .success(Parsed(path: path, query: query))
    }

    private static func decode(_ bytes: ArraySlice<UInt8>, plusIsSpace: Bool) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let c = bytes[i]
            if c == UInt8(ascii: "%") {
                guard i + 2 < bytes.endIndex, let hi = HexDigit.value(bytes[i + 1]),
                    let lo = HexDigit.value(bytes[i + 2])
                else { return nil }
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(plusIsSpace && c == UInt8(ascii: "+") ? 0x20 : c)
                i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}

public struct AdminURIError: Error, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
}
