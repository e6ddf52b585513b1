import Foundation
import Logging
import SparkgateCore
import SparkgateServer

/// Loading shared by the commands: logging, and the configuration with errors printed as the user needs them.
enum Bootstrap {
    static func logging(level: String) {
        let parsed = Logger.Level(rawValue: level.lowercased()) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = parsed
            return handler
        }
    }

    /// The configuration at `file`, or exit 1 after printing each problem (file, key, reason).
    static func config(_ file: String) throws -> SparkgateConfig {
        do {
            return try SparkgateConfig.load(file: file)
        } catch {
            printError(error.description)
            throw ExitCodeError.failure
        }
    }

    static func state(
        _ config: SparkgateConfig, backendTokens: Bool = true, logger: Logger
    ) async throws -> GatewayGeneration {
        do {
            return try await GatewayGenerationLoader.load(config, backendTokens: backendTokens, logger: logger)
        } catch {
            printError(error.description)
            throw ExitCodeError.failure
        }
    }

    static func printError(_ text: String) {
        FileHandle.standardError.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }
}

enum ExitCodeError: Error {
    case failure
}
