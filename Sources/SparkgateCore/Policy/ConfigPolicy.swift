/// Which Spark configuration keys no client may read or set through the Config RPC.
///
/// Patterns are globs (`*` any run of characters, `?` one character), matched case-insensitively so
/// `*password*` also covers `spark.hadoop.fs.s3a.Password`.
public struct ConfigPolicy: Sendable, Equatable {
    public static let defaultDenyKeys = ["spark.connect.authenticate.token", "*password*", "*secret*", "*credentials*"]

    public let denyKeys: [String]
    private let patterns: [[UInt8]]

    public init(denyKeys: [String]) {
        self.denyKeys = denyKeys
        self.patterns = denyKeys.map { Array($0.lowercased().utf8) }
    }

    public func denies(_ key: String) -> Bool {
        guard !patterns.isEmpty else { return false }
        let name = Array(key.lowercased().utf8)
        return patterns.contains { Self.glob($0, matches: name) }
    }

    /// The first key of `keys` the policy denies.
    public func firstDenied(in keys: [String]) -> String? {
        keys.first(where: denies)
    }

    /// Iterative glob matching with single-star backtracking: linear in practice, never exponential.
    static func glob(_ pattern: [UInt8], matches text: [UInt8]) -> Bool {
        var p = 0
        var t = 0
        var starP = -1
        var starT = 0
        let star = UInt8(ascii: "*")
        let any = UInt8(ascii: "?")
        while t < text.count {
            if p < pattern.count && (pattern[p] == any || pattern[p] == text[t]) {
                p += 1
                t += 1
            } else if p < pattern.count && pattern[p] == star {
                starP = p
                starT = t
                p += 1
            } else if starP >= 0 {
                p = starP + 1
                starT += 1
                t = starT
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == star { p += 1 }
        return p == pattern.count
    }
}
