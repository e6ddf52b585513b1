import ArgumentParser
import Foundation
import JWTKit
import Logging
import SparkgateAuth
import SparkgateCore
import SparkgateServer

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Issue and inspect team tokens.",
        subcommands: [Issue.self, Inspect.self])

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a signed JWT for a team member on stdout.",
            discussion: """
                Signs with --kid, or the first configured key that has a private_key (or secret_file), and sets
                iss, aud, the user and team claims, groups, iat, nbf, exp (now + --ttl) and a random jti.

                Example:
                  TOKEN=$(sparkgate token issue --config config/sparkgate.yaml --user alice --team analytics --ttl 8h)
                  pyspark --remote "sc://gateway.example.com:15443/;use_ssl=true;token=$TOKEN"
                """)

        @Option(name: .shortAndLong, help: "The configuration file.")
        var config = "config/sparkgate.yaml"
        @Option(help: "The user the token speaks for.")
        var user: String
        @Option(help: "The user's team (a key under teams).")
        var team: String
        @Option(help: "How long the token lives: 30m, 8h, 7d.")
        var ttl = "8h"
        @Option(help: "Comma-separated groups.")
        var groups = ""
        @Option(help: "The key to sign with.")
        var kid: String?

        func run() async throws {
            let cfg: SparkgateConfig
            do { cfg = try Bootstrap.config(config) } catch { throw ExitCode.failure }
            guard let seconds = TTL.seconds(ttl) else {
                throw ValidationError("--ttl '\(ttl)' is not a duration like 30m, 8h or 7d")
            }
            guard !user.isEmpty, !team.isEmpty else { throw ValidationError("--user and --team must not be empty") }
            if cfg.teams[team] == nil && !cfg.allowUnknownTeams {
                Bootstrap.printError(
                    "warning: team '\(team)' is not under teams in \(config); the gateway will refuse this token until it is"
                )
            }
            let candidates = cfg.auth.keys.enumerated().filter {
                kid == nil ? ($0.element.privateKey != nil || $0.element.secretFile != nil) : $0.element.kid == kid
            }
            guard let (index, key) = candidates.first else {
                Bootstrap.printError(
                    kid.map { "\(config): auth.keys: no key with kid '\($0)'" }
                        ?? "\(config): auth.keys: no key has a private_key or secret_file to sign with")
                throw ExitCode.failure
            }
            let collection: JWTKeyCollection
            do {
                collection = try await KeyLoader.signingCollection(key, path: "auth.keys[\(index)]")
            } catch {
                Bootstrap.printError("\(config): \(error)")
                throw ExitCode.failure
            }
            let now = Int(Date().timeIntervalSince1970)
            let claims = TokenClaims(
                issuer: cfg.auth.issuer, audience: cfg.auth.audience, subject: user, userClaim: cfg.auth.userClaim,
                team: team, teamClaim: cfg.auth.teamClaim,
                groups: groups.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                    !$0.isEmpty
                }, groupsClaim: cfg.auth.groupsClaim,
                issuedAt: now, expires: now + seconds, id: UUIDText.random())
            var header = JWTHeader()
            header.typ = "JWT"
            let token = try await collection.sign(claims, kid: JWKIdentifier(string: key.kid), header: header)
            print(token)
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify a token as `serve` would and print its claims, or exit 1 with the reason.",
            discussion: """
                Example:
                  sparkgate token inspect --config config/sparkgate.yaml "$TOKEN"
                """)

        @Option(name: .shortAndLong, help: "The configuration file.")
        var config = "config/sparkgate.yaml"
        @Argument(help: "The JWT (or '-' to read it from stdin).")
        var token: String

        func run() async throws {
            Bootstrap.logging(level: "warning")
            let logger = Logger(label: "sparkgate")
            let cfg: SparkgateConfig
            let state: GatewayGeneration
            do {
                cfg = try Bootstrap.config(config)
                state = try await Bootstrap.state(cfg, backendTokens: false, logger: logger)
            } catch { throw ExitCode.failure }
            var text = token
            if text == "-" { text = readLine(strippingNewline: true) ?? "" }
            text = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if text.lowercased().hasPrefix("bearer ") { text = String(text.dropFirst(7)) }
            let now = Date().timeIntervalSince1970
            var outcome = state.authenticator.authenticate(text[...], now: now)
            if case .unknownKey = outcome, !cfg.auth.jwksURLs.isEmpty {
                let refresher = JWKSRefresher(
                    urls: cfg.auth.jwksURLs, interval: cfg.auth.jwksRefreshSeconds, logger: logger
                ) { keys in
                    state.authenticator.replaceKeys(state.staticKeys.merging(keys))
                }
                await refresher.refreshNow()
                await refresher.shutdown()
                outcome = state.authenticator.authenticate(text[...], now: now)
            }
            switch outcome {
            case .verified(let verified):
                if cfg.team(verified.identity.team) == nil {
                    Bootstrap.printError(
                        "token verifies, but team '\(verified.identity.team)' is not configured: the gateway answers PERMISSION_DENIED"
                    )
                    throw ExitCode.failure
                }
                let parts = text.split(separator: ".")
                let payload =
                    Base64URL.decode(parts[1].utf8).flatMap { try? JSONSerialization.jsonObject(with: Data($0)) } ?? [:]
                let result: [String: Any] = [
                    "valid": true, "user": verified.identity.user, "team": verified.identity.team,
                    "groups": verified.identity.groups,
                    "expires": Timestamp.rfc3339(verified.expiresAt), "claims": payload,
                ]
                let data = try JSONSerialization.data(withJSONObject: result, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            case .failed(let failure):
                Bootstrap.printError("invalid token: \(failure.message)")
                throw ExitCode.failure
            case .unknownKey(let kid):
                Bootstrap.printError("invalid token: \(Authenticator.unknownKeyFailure(kid).message)")
                throw ExitCode.failure
            }
        }
    }
}
