import Foundation
import Yams

/// Walks a YAML document, collecting every problem as a `ConfigIssue` that names the key path and line.
final class ConfigReader {
    let file: String
    let directory: String
    private(set) var issues: [ConfigIssue] = []

    init(file: String) {
        self.file = file
        let dir = (file as NSString).deletingLastPathComponent
        self.directory = dir.isEmpty ? "." : dir
    }

    func fail(_ key: String, _ node: Node?, _ message: String) {
        issues.append(ConfigIssue(file: file, line: node?.mark.map { $0.line }, key: key, message: message))
    }

    /// With `recordsKeys`, every key a visited mapping allows, as a path with names and list positions
    /// generalised (`backends.<name>.endpoints`, `auth.keys[].kid`): what the configuration reference
    /// must document.
    var recordsKeys = false
    private(set) var allowedKeys: Set<String> = []

    /// The pairs of a mapping, after refusing keys outside `allowed` (typos must not be silently ignored).
    func mapping(_ node: Node, _ key: String, allowed: Set<String>) -> [String: Node] {
        if recordsKeys {
            let general = Self.generalised(key)
            for name in allowed { allowedKeys.insert(general.isEmpty ? name : "\(general).\(name)") }
        }
        guard case .mapping(let mapping) = node else {
            fail(key, node, "must be a mapping of keys to values")
            return [:]
        }
        var out: [String: Node] = [:]
        for (k, v) in mapping {
            guard let name = k.string else {
                fail(key, k, "keys must be strings")
                continue
            }
            let path = key.isEmpty ? name : "\(key).\(name)"
            if !allowed.isEmpty && !allowed.contains(name) {
                let suggestion = allowed.min(by: { editDistance($0, name) < editDistance($1, name) })
                let hint = suggestion.map { editDistance($0, name) <= 3 ? " (did you mean '\($0)'?)" : "" } ?? ""
                fail(path, k, "unknown key\(hint)")
                continue
            }
            if out[name] != nil { fail(path, k, "appears twice") }
            out[name] = v
        }
        return out
    }

    /// `backends.spark.launch` → `backends.<name>.launch`, `auth.keys[2]` → `auth.keys[]`.
    static func generalised(_ path: String) -> String {
        var parts = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        for (i, part) in parts.enumerated() {
            if let bracket = part.firstIndex(of: "[") { parts[i] = part[..<bracket] + "[]" }
            if i > 0, ["backends", "teams", "environment"].contains(parts[i - 1]) { parts[i] = "<name>" }
        }
        return parts.joined(separator: ".")
    }

    func isNull(_ node: Node) -> Bool {
        if case .scalar = node { return node.null != nil }
        return false
    }

    func string(_ node: Node, _ key: String) -> String? {
        guard case .scalar(let s) = node, !isNull(node) else {
            fail(key, node, "must be a string")
            return nil
        }
        return s.string
    }

    func nonEmptyString(_ node: Node, _ key: String) -> String? {
        guard let s = string(node, key) else { return nil }
        guard !s.isEmpty else {
            fail(key, node, "must not be empty")
            return nil
        }
        return s
    }

    func optionalString(_ node: Node, _ key: String) -> String?? {
        isNull(node) ? .some(nil) : string(node, key).map { .some($0) }
    }

    func bool(_ node: Node, _ key: String) -> Bool? {
        guard let b = node.bool, case .scalar = node else {
            fail(key, node, "must be true or false")
            return nil
        }
        return b
    }

    func int(_ node: Node, _ key: String, min: Int = 0, max: Int = Int.max) -> Int? {
        guard case .scalar(let s) = node, let v = Int(s.string.replacingOccurrences(of: "_", with: "")) else {
            fail(key, node, "must be a whole number")
            return nil
        }
        guard v >= min, v <= max else {
            fail(
                key, node,
                max == Int.max ? "must be at least \(min), not \(v)" : "must be between \(min) and \(max), not \(v)")
            return nil
        }
        return v
    }

    func number(_ node: Node, _ key: String, min: Double = 0) -> Double? {
        guard case .scalar(let s) = node, let v = Double(s.string.replacingOccurrences(of: "_", with: "")), v.isFinite
        else {
            fail(key, node, "must be a number")
            return nil
        }
        guard v >= min else {
            fail(key, node, "must be at least \(min), not \(v)")
            return nil
        }
        return v
    }

    func stringList(_ node: Node, _ key: String) -> [String]? {
        if isNull(node) { return [] }
        guard case .sequence(let seq) = node else {
            fail(key, node, "must be a list of strings")
            return nil
        }
        var out: [String] = []
        for (i, item) in seq.enumerated() {
            if let s = string(item, "\(key)[\(i)]") { out.append(s) }
        }
        return out
    }

    func hostPort(_ node: Node, _ key: String) -> HostPort? {
        guard let s = string(node, key) else { return nil }
        guard let hp = HostPort(parsing: s) else {
            fail(key, node, "'\(s)' is not host:port (for example 127.0.0.1:15002 or [::1]:15002)")
            return nil
        }
        return hp
    }

    /// A file path, made absolute against the config file's directory.
    func path(_ node: Node, _ key: String) -> String? {
        guard let s = nonEmptyString(node, key) else { return nil }
        return resolve(s)
    }

    func optionalPath(_ node: Node, _ key: String) -> String?? {
        if isNull(node) { return .some(nil) }
        return path(node, key).map { .some($0) }
    }

    func resolve(_ path: String) -> String {
        path.hasPrefix("/")
            ? path : ((directory as NSString).appendingPathComponent(path) as NSString).standardizingPath
    }
}

/// Levenshtein distance, for "did you mean" hints on mistyped keys.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var previous = row[0]
        row[0] = i
        for j in 1...max(b.count, 1) where !b.isEmpty {
            let current = row[j]
            row[j] = Swift.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
            previous = current
        }
    }
    return row[b.count]
}
