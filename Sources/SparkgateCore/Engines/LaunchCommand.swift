/// The argv and environment of one engine, from the backend's templates.
public struct LaunchCommand: Sendable, Equatable {
    /// The placeholders a template may use.
    public static let placeholders: Set<String> = [
        "port", "host", "token", "token_file", "team", "user", "engine_id", "work_dir",
    ]

    /// What an engine inherits from the gateway's environment: enough to find programs and Java, never the
    /// gateway's own secrets (backend tokens, keys).
    public static let inheritedEnvironment = [
        "PATH", "HOME", "LANG", "LC_ALL", "JAVA_HOME", "TMPDIR", "USER", "LOGNAME", "TZ",
    ]

    public var argv: [String]
    public var environment: [String: String]

    /// Fills `settings`' templates for one engine; `gateway` is the gateway's environment.
    public init(_ settings: LaunchSettings, values: [String: String], gateway: [String: String]) {
        argv = settings.command.map { Self.fill($0, values) }
        var env: [String: String] = [:]
        for name in Self.inheritedEnvironment { if let v = gateway[name] { env[name] = v } }
        for (name, template) in settings.environment { env[name] = Self.fill(template, values) }
        environment = env
    }

    /// `template` with each `{name}` replaced by its value; `{{` and `}}` stand for braces.
    public static func fill(_ template: String, _ values: [String: String]) -> String {
        var out = ""
        var i = template.startIndex
        while i < template.endIndex {
            let c = template[i]
            let next = template.index(after: i)
            if c == "{" || c == "}", next < template.endIndex, template[next] == c {
                out.append(c)
                i = template.index(after: next)
            } else if c == "{", let close = template[next...].firstIndex(of: "}"),
                let value = values[String(template[next..<close])]
            {
                out += value
                i = template.index(after: close)
            } else {
                out.append(c)
                i = next
            }
        }
        return out
    }

    /// The placeholders in `template` that are not known (a typo would otherwise reach the engine verbatim).
    public static func unknownPlaceholders(in template: String, known: Set<String> = placeholders) -> [String] {
        placeholdersUsed(in: template).filter { !known.contains($0) }
    }

    /// Every `{name}` in `template`, in order.
    public static func placeholdersUsed(in template: String) -> [String] {
        var unknown: [String] = []
        var i = template.startIndex
        while let open = template[i...].firstIndex(of: "{") {
            let next = template.index(after: open)
            if next < template.endIndex, template[next] == "{" {
                i = template.index(after: next)
                continue
            }
            guard let close = template[next...].firstIndex(of: "}") else { break }
            unknown.append(String(template[next..<close]))
            i = template.index(after: close)
        }
        return unknown
    }
}
