/// A configuration key pattern denied by default, with why.
public struct DeniedConfigKey: Sendable, Equatable {
    public var pattern: String
    public var reason: String
}

/// Which Spark configuration keys no client may read or set: through the Config RPC, or SQL `SET`/`RESET`.
///
/// Patterns are globs (`*` any run of characters, `?` one character), matched case-insensitively so
/// `*password*` also covers `spark.hadoop.fs.s3a.Password`.
public struct ConfigPolicy: Sendable, Equatable {
    /// The default list, in one place, each entry with its reason (checked against Spark 4.3 in
    /// `Tests/integration/test_policy.py`).
    public static let defaultDenied: [DeniedConfigKey] = [
        .init(
            pattern: "spark.connect.authenticate.token",
            reason: "the backend token: whoever reads it can call Spark around the gateway"),
        .init(pattern: "*password*", reason: "passwords (JDBC, keystores, object stores)"),
        .init(pattern: "*secret*", reason: "secrets (fs.s3a.secret.key, OAuth client secrets)"),
        .init(pattern: "*credentials*", reason: "credential providers and credential files"),
        .init(pattern: "*token*", reason: "bearer and session tokens (fs.s3a.session.token, the backend token)"),
        .init(pattern: "*access.key*", reason: "object-store access keys (fs.s3a.access.key)"),
        .init(
            pattern: "*fs.azure.account.key.*",
            reason: "Azure storage account keys, with or without the spark.hadoop. prefix"),
        .init(
            pattern: "spark.sql.optimizer.excludedRules",
            reason:
                "switches off optimizer rules, among them the ones catalog authorization (Ranger-style row and column filters) relies on; settable at run time in Spark 4.3"
        ),
        .init(
            pattern: "spark.sql.extensions",
            reason:
                "loads session extensions, that is code, into the engine (static in Spark 4.3, which refuses it at run time; denied for engines that do not)"
        ),
        .init(
            pattern: "spark.plugins",
            reason: "loads plugins, that is code, into the driver and executors (static in Spark 4.3)"),
        .init(
            pattern: "spark.jars*",
            reason:
                "adds jars and packages, that is code, to the session (spark.jars, spark.jars.packages, spark.jars.repositories)"
        ),
    ]

    public static let defaultDenyKeys = defaultDenied.map(\.pattern)

    public let denyKeys: [String]
    private let patterns: [[UInt8]]

    public init(denyKeys: [String]) {
        self.denyKeys = denyKeys
        self.patterns = denyKeys.map { Array($0.lowercased().utf8) }
    }

    public func denies(_ key: String) -> Bool {
        guard !patterns.isEmpty else { return false }
        // An ASCII key (every Spark key) is matched in place, lower-cased as it is read (this runs for every
        // key of every Config call); any other is lower-cased first, as Unicode says.
        var name = key
        if let verdict = name.withUTF8({ bytes -> Bool? in
            guard bytes.allSatisfy({ $0 < 0x80 }) else { return nil }
            return patterns.contains { Self.glob($0, matches: bytes) }
        }) {
            return verdict
        }
        let lowered = Array(key.lowercased().utf8)
        return lowered.withUnsafeBufferPointer { bytes in patterns.contains { Self.glob($0, matches: bytes) } }
    }

    /// The first key of `keys` the policy denies.
    public func firstDenied(in keys: [String]) -> String? {
        keys.first(where: denies)
    }

    /// Iterative glob matching with single-star backtracking: linear in practice, never exponential. `text`'s
    /// ASCII upper-case letters match their lower-case forms in `pattern` (which is lower case).
    package static func glob(_ pattern: [UInt8], matches text: [UInt8]) -> Bool {
        text.withUnsafeBufferPointer { glob(pattern, matches: $0) }
    }

    package static func glob(_ pattern: [UInt8], matches text: UnsafeBufferPointer<UInt8>) -> Bool {
        var p = 0
        var t = 0
        var starP = -1
        var starT = 0
        let star = UInt8(ascii: "*")
        let any = UInt8(ascii: "?")
        while t < text.count {
            let c = text[t] &- UInt8(ascii: "A") < 26 ? text[t] | 0x20 : text[t]
            if p < pattern.count && (pattern[p] == any || pattern[p] == c) {
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
