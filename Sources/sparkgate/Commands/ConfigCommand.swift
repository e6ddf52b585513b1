import ArgumentParser
import Logging
import SparkgateCore
import SparkgateServer

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Configuration tools.",
        subcommands: [Check.self])

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
}
