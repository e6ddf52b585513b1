import Foundation
import Yams

extension SparkgateConfig {
    static func readLaunch(_ node: Node, _ key: String, _ r: ConfigReader) -> LaunchSettings? {
        let m = r.mapping(
            node, key,
            allowed: [
                "command", "environment", "share", "ports", "work_dir", "startup_timeout_seconds", "idle_seconds",
                "stop_grace_seconds", "max_engines",
                "max_engines_per_team", "run_as", "advertise_host", "warm_engines", "warm_engines_per_team",
                "allow_shared_run_as", "log_tail_in_errors",
            ])
        guard let commandNode = m["command"] else {
            r.fail(
                "\(key).command", node,
                "is required: the engine's argv, for example [\"sail\", \"spark\", \"server\", \"--port\", \"{port}\"]")
            return nil
        }
        guard let command = r.stringList(commandNode, "\(key).command") else { return nil }
        if command.isEmpty || command[0].isEmpty { r.fail("\(key).command", commandNode, "must name a program to run") }
        var launch = LaunchSettings(command: command)
        for (i, part) in command.enumerated() {
            for name in LaunchCommand.unknownPlaceholders(in: part) {
                r.fail(
                    "\(key).command[\(i)]", commandNode,
                    "unknown placeholder {\(name)} (known: \(LaunchCommand.placeholders.sorted().map { "{\($0)}" }.joined(separator: " ")))"
                )
            }
        }
        if !command.contains(where: { $0.contains("{port}") }) {
            r.fail(
                "\(key).command", commandNode,
                "never uses {port}: the engine must listen on the port Sparkgate gives it")
        }
        if let n = m["environment"], !r.isNull(n) {
            for (name, value) in r.mapping(n, "\(key).environment", allowed: []) {
                guard let v = r.string(value, "\(key).environment.\(name)") else { continue }
                for p in LaunchCommand.unknownPlaceholders(in: v) {
                    r.fail("\(key).environment.\(name)", value, "unknown placeholder {\(p)}")
                }
                launch.environment[name] = v
            }
        }
        if let n = m["share"], let v = r.string(n, "\(key).share") {
            if let share = LaunchSettings.Share(rawValue: v) {
                launch.share = share
            } else {
                r.fail("\(key).share", n, "'\(v)' is not team, user or server")
            }
        }
        if let n = m["ports"], let v = r.string(n, "\(key).ports") {
            let parts = v.split(separator: "-", omittingEmptySubsequences: false).map {
                Int($0.trimmingCharacters(in: .whitespaces))
            }
            if parts.count == 2, let lo = parts[0], let hi = parts[1], 1 <= lo, lo <= hi, hi <= 65535 {
                launch.ports = lo...hi
            } else if parts.count == 1, let p = parts[0], 1 <= p, p <= 65535 {
                launch.ports = p...p
            } else {
                r.fail("\(key).ports", n, "'\(v)' is not a port range such as \"20000-20999\"")
            }
        }
        if let n = m["work_dir"], let v = r.optionalPath(n, "\(key).work_dir") { launch.workDirectory = v }
        if let n = m["startup_timeout_seconds"], let v = r.number(n, "\(key).startup_timeout_seconds", min: 1) {
            launch.startupTimeoutSeconds = v
        }
        if let n = m["idle_seconds"], let v = r.number(n, "\(key).idle_seconds", min: 1) { launch.idleSeconds = v }
        if let n = m["stop_grace_seconds"], let v = r.number(n, "\(key).stop_grace_seconds", min: 0) {
            launch.stopGraceSeconds = v
        }
        if let n = m["max_engines"], let v = r.int(n, "\(key).max_engines", min: 1, max: 10_000) {
            launch.maxEngines = v
        }
        if let n = m["max_engines_per_team"], let v = r.int(n, "\(key).max_engines_per_team", min: 1, max: 10_000) {
            launch.maxEnginesPerTeam = v
            if v > launch.maxEngines {
                r.fail("\(key).max_engines_per_team", n, "\(v) is more than max_engines (\(launch.maxEngines))")
            }
        }
        if let n = m["allow_shared_run_as"], let v = r.bool(n, "\(key).allow_shared_run_as") {
            launch.allowSharedRunAs = v
        }
        if let n = m["log_tail_in_errors"], let v = r.bool(n, "\(key).log_tail_in_errors") {
            launch.logTailInErrors = v
        }
        if let n = m["run_as"], let v = r.string(n, "\(key).run_as") {
            let unknown = LaunchCommand.unknownPlaceholders(in: v, known: LaunchSettings.runAsPlaceholders)
            if !unknown.isEmpty {
                r.fail(
                    "\(key).run_as", n,
                    "unknown placeholder \(unknown.map { "{\($0)}" }.joined(separator: " ")) (run_as may use {team} and {user})"
                )
            } else if v.isEmpty || v.contains("/") || v.contains(":") || v.contains(" ") {
                r.fail("\(key).run_as", n, "'\(v)' is not an OS user name or a template such as \"sg-{team}\"")
            } else if v.contains("{user}") && launch.share != .user {
                r.fail(
                    "\(key).run_as", n,
                    "uses {user} but share is \(launch.share.rawValue): one engine serves several users; use {team} (share: team) or a fixed name"
                )
            } else if v.contains("{team}") && launch.share == .server {
                r.fail(
                    "\(key).run_as", n,
                    "uses {team} but share is server: one engine serves every team; use a fixed name")
            } else if v == "root" {
                r.fail(
                    "\(key).run_as", n,
                    "would run engines as root, which can read every tenant's files and the gateway's secrets; name an unprivileged user"
                )
            }
            launch.runAs = v
            if let problem = launch.runAsSharingProblem { r.fail("\(key).run_as", n, problem) }
        }
        if let n = m["advertise_host"], let v = r.string(n, "\(key).advertise_host") {
            if v.isEmpty || v.contains(" ") || v.contains("/") {
                r.fail("\(key).advertise_host", n, "'\(v)' is not a host name or address")
            }
            launch.advertiseHost = v
        }
        if let n = m["warm_engines"], let v = r.int(n, "\(key).warm_engines", min: 0, max: 1_000) {
            launch.warmEngines = v
            if v > launch.maxEngines {
                r.fail("\(key).warm_engines", n, "\(v) is more than max_engines (\(launch.maxEngines))")
            }
            if v > 0, !launch.runAsIsFixed && launch.share != .server {
                r.fail(
                    "\(key).warm_engines", n,
                    "starts engines for any tenant, but run_as '\(launch.runAs ?? "")' depends on the tenant; use warm_engines_per_team, which starts each team's warm engines as the team's own user"
                )
            }
            let templates = launch.command + Array(launch.environment.values)
            if v > 0,
                let used = templates.flatMap(LaunchCommand.placeholdersUsed(in:)).first(where: {
                    $0 == "team" || $0 == "user"
                })
            {
                r.fail(
                    "\(key).warm_engines", n,
                    "cannot warm engines whose command or environment uses {\(used)}: a warm engine starts before its tenant is known"
                )
            }
        }
        if let n = m["warm_engines_per_team"], let v = r.int(n, "\(key).warm_engines_per_team", min: 0, max: 100) {
            launch.warmEnginesPerTeam = v
            if v > launch.maxEngines {
                r.fail("\(key).warm_engines_per_team", n, "\(v) is more than max_engines (\(launch.maxEngines))")
            }
            if v > 0 && launch.share == .server {
                r.fail(
                    "\(key).warm_engines_per_team", n,
                    "does not apply with share: server (one engine serves every team); use warm_engines")
            }
            let templates = launch.command + Array(launch.environment.values) + [launch.runAs ?? ""]
            if v > 0, templates.flatMap(LaunchCommand.placeholdersUsed(in:)).contains("user") {
                r.fail(
                    "\(key).warm_engines_per_team", n,
                    "cannot warm engines whose command, environment or run_as uses {user}: a team's warm engine starts before its user is known"
                )
            }
        }
        if launch.ports.count < launch.maxEngines, let n = m["ports"] {
            r.fail("\(key).ports", n, "has \(launch.ports.count) ports for max_engines (\(launch.maxEngines)) engines")
        }
        return launch
    }
}
