import ArgumentParser
import Logging
import SparkgateCore
import SparkgateServer

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Configuration tools.",
        subcommands: [Check.self, Keys.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Validate a configuration and the files it names; exit 0, or 1 naming each bad key, file and reason.",
            discussion: """
                Example:
                  sparkgate config check --config config/sparkgate.yaml
                """)

        @Option(name: .shortAndLong, help: "The configuration file.")
        var config = "config/sparkgate.yaml"

        func run() async throws {
            Bootstrap.logging(level: "error")
            do {
                let cfg = try Bootstrap.config(config)
                let state = try await Bootstrap.state(cfg, logger: Logger(label: "sparkgate"))
                for warning in state.warnings { print("warning: \(warning)") }
                print(
                    "\(config): OK (\(cfg.backends.count) backend\(cfg.backends.count == 1 ? "" : "s"), \(cfg.teams.count) team\(cfg.teams.count == 1 ? "" : "s"), \(cfg.auth.keys.count) key\(cfg.auth.keys.count == 1 ? "" : "s"), \(cfg.tls == nil ? "plaintext h2c" : cfg.tls?.clientCA == nil ? "TLS" : "mutual TLS"))"
                )
            } catch {
                throw ExitCode.failure
            }
        }
    }

    struct Keys: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every configuration key (type, default, reload, what it does) as Markdown tables.",
            discussion: """
                The tables of docs/configuration.md are this output. Examples:
                  sparkgate config keys
                  sparkgate config keys --section "Limits"
                """)

        @Option(help: "Only the section with this title.")
        var section: String?

        func run() throws {
            let sections = ConfigurationKeys.sections.filter { section == nil || $0.title == section }
            guard !sections.isEmpty else {
                let titles = ConfigurationKeys.sections.map { "'\($0.title)'" }.joined(separator: ", ")
                throw ValidationError("no section '\(section ?? "")'; the sections are \(titles)")
            }
            print(sections.map { "## \($0.title)\n\n" + ConfigurationKeys.markdown($0) }.joined(separator: "\n\n"))
        }
    }
}
