import Foundation
import Logging
import NIOSSL
import SparkgateAuth
import SparkgateCore
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport
import SwiftASN1
import X509

/// Builds a `GatewayGeneration` from a validated configuration: reads keys, JWKS files, revocations, tokens and
/// certificates. Every failure names the config key and file.
public enum GatewayGenerationLoader {
    public struct Failure: Error, CustomStringConvertible {
        public var issues: [ConfigIssue]
        public var description: String { issues.map(\.description).joined(separator: "\n") }
    }

    /// `backendTokens: false` skips the backend tokens, for commands that never call a backend (token inspect).
    public static func load(
        _ config: SparkgateConfig, environment: [String: String] = ProcessInfo.processInfo.environment,
        backendTokens: Bool = true, logger: Logger
    ) async throws(Failure) -> GatewayGeneration {
        var issues: [ConfigIssue] = []
        func fail(_ key: String, _ message: String) {
            issues.append(ConfigIssue(file: config.file, key: key, message: message))
        }

        var keys: [VerificationKey] = []
        do {
            keys = try await KeyLoader.load(config.auth.keys)
        } catch {
            fail(error.key, error.message)
        }
        for (index, file) in config.auth.jwksFiles.enumerated() {
            guard let data = FileManager.default.contents(atPath: file) else {
                fail("auth.jwks_files[\(index)]", "cannot read \(file)")
                continue
            }
            do {
                let document = try await JWKSDocument.parse(data, origin: file)
                for reason in document.skipped {
                    logger.warning("skipping a JWKS key", metadata: ["jwks.file": "\(file)", "reason": "\(reason)"])
                }
                keys += document.keys
            } catch {
                fail("auth.jwks_files[\(index)]", "\(file): \(error)")
            }
        }

        var revoked: Set<String> = []
        if let file = config.auth.revokedTokenIDsFile {
            if let text = try? String(contentsOfFile: file, encoding: .utf8) {
                revoked = Set(
                    text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                        !$0.isEmpty && !$0.hasPrefix("#")
                    })
            } else {
                fail("auth.revoked_token_ids_file", "cannot read \(file)")
            }
        }

        var tokens: [String: String] = [:]
        var backendTLS: [String: NIOSSLContext] = [:]
        for (name, backend) in config.backends.sorted(by: { $0.key < $1.key }) {
            if backendTokens, let variable = backend.tokenEnv {
                if let value = environment[variable], !value.isEmpty {
                    tokens[name] = value
                } else {
                    logger.warning(
                        "backend token variable is not set; Sparkgate will send no token",
                        metadata: ["backend": "\(name)", "backend.token_env": "\(variable)"])
                }
            }
            if backendTokens, let file = backend.tokenFile {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    fail("backends.\(name).token_file", "cannot read \(file)")
                    continue
                }
                let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
                if token.isEmpty {
                    fail("backends.\(name).token_file", "\(file) is empty")
                } else {
                    tokens[name] = token
                }
            }
            if backend.tls {
                do {
                    var tls = TLSConfiguration.makeClientConfiguration()
                    tls.applicationProtocols = ["h2"]
                    if let ca = backend.tlsCA { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca)) }
                    backendTLS[name] = try NIOSSLContext(configuration: tls)
                } catch {
                    fail("backends.\(name).tls_ca", "cannot build the backend TLS context: \(error)")
                }
            }
        }

        var serverTLS: NIOSSLContext?
        var notAfter: Double?
        if let tls = config.tls {
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(tls.certificate)
                guard !chain.isEmpty else { throw TLSLoadError("\(tls.certificate) holds no certificate") }
                let leaf = try Certificate(derEncoded: try chain[0].toDERBytes())
                notAfter = leaf.notValidAfter.timeIntervalSince1970
                if leaf.notValidAfter < Date() {
                    fail("tls.certificate", "\(tls.certificate) expired at \(Timestamp.rfc3339(notAfter!))")
                }
                let key = try NIOSSLPrivateKey(file: tls.privateKey, format: .pem)
                var server = TLSConfiguration.makeServerConfiguration(
                    certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
                server.minimumTLSVersion = .tlsv12
                server.applicationProtocols = ["h2"]
                if let ca = tls.clientCA {
                    server.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
                    server.certificateVerification = .noHostnameVerification
                } else {
                    server.certificateVerification = .none
                }
                serverTLS = try NIOSSLContext(configuration: server)
            } catch let error as TLSLoadError {
                fail("tls.certificate", error.message)
            } catch {
                fail(
                    "tls",
                    "cannot load the certificate, key or client CA (\(tls.certificate), \(tls.privateKey)\(tls.clientCA.map { ", \($0)" } ?? "")): \(error)"
                )
            }
        }

        func adminSecret(_ file: String?, _ key: String) -> String? {
            guard let file else { return nil }
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
                !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            {
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            fail(key, "cannot read \(file), or it is empty")
            return nil
        }
        let adminToken = adminSecret(config.admin.tokenFile, "admin.token_file")
        let adminReadToken = adminSecret(config.admin.readTokenFile, "admin.read_token_file")
        if let adminToken, adminToken == adminReadToken {
            fail("admin.read_token_file", "holds the admin token: the read token must differ, or it opens every change")
        }

        func secret(_ file: String?, _ key: String) -> String? {
            guard config.state.kind == .redis, let file else { return nil }
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
                !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            {
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            fail(key, "cannot read \(file), or it is empty")
            return nil
        }
        let redisPassword = secret(config.state.redis.passwordFile, "state.redis.password_file")
        let sentinelPassword = secret(config.state.redis.sentinel?.passwordFile, "state.redis.sentinel.password_file")
        var recordSecret: [UInt8]?
        if config.state.kind == .redis, let file = config.state.redis.secretFile {
            if let data = FileManager.default.contents(atPath: file) {
                var bytes = Array(data)
                while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") {
                    bytes.removeLast()
                }
                if bytes.count < RecordSeal.minimumSecretBytes {
                    fail(
                        "state.redis.secret_file",
                        "\(file) holds \(bytes.count) bytes; the replicas' secret needs at least \(RecordSeal.minimumSecretBytes) (openssl rand -hex 32 > \(file))"
                    )
                } else {
                    recordSecret = bytes
                }
            } else {
                fail("state.redis.secret_file", "cannot read \(file)")
            }
        }

        var redisTLS: NIOSSLContext?
        if config.state.kind == .redis && config.state.redis.tls {
            do {
                redisTLS = try NIOSSLContext(configuration: .makeClientConfiguration())
            } catch {
                fail("state.redis.tls", "cannot set up TLS toward Redis: \(error)")
            }
        }

        // `advertise_host: "$POD_IP"`: the address is known only where the replica runs.
        var config = config
        for (name, backend) in config.backends.sorted(by: { $0.key < $1.key }) {
            guard let host = backend.launch?.advertiseHost, host.hasPrefix("$") else { continue }
            let variable = String(host.dropFirst())
            if let value = environment[variable], !value.isEmpty {
                config.backends[name]?.launch?.advertiseHost = value
            } else {
                fail("backends.\(name).launch.advertise_host", "the environment variable \(variable) is not set")
            }
        }
        for (name, backend) in config.backends.sorted(by: { $0.key < $1.key }) {
            guard let launch = backend.launch, let runAs = launch.runAs else { continue }
            if !EngineCredentials.processCanSwitchUser {
                fail(
                    "backends.\(name).launch.run_as",
                    "engines cannot run as '\(runAs)': Sparkgate runs as uid \(geteuid()) without CAP_SETUID and CAP_SETGID; run it as root or grant both capabilities"
                )
            } else if launch.runAsIsFixed, let found = EngineCredentials.lookUp(runAs) {
                if found.uid == 0 || found.uid == geteuid() {
                    fail(
                        "backends.\(name).launch.run_as",
                        "'\(runAs)' has uid \(found.uid), \(found.uid == 0 ? "root's" : "the gateway's own"): its engines could read the gateway's secrets; name an unprivileged user of their own"
                    )
                }
            } else if launch.runAsIsFixed {
                fail(
                    "backends.\(name).launch.run_as",
                    "there is no OS user '\(runAs)'; create it (useradd --system --create-home \(runAs)) or name another"
                )
            }
        }
        for (name, backend) in config.backends.sorted(by: { $0.key < $1.key }) {
            guard let directory = backend.launch?.workDirectory, let problem = EngineWorkspace.inspect(directory) else {
                continue
            }
            fail("backends.\(name).launch.work_dir", problem.description)
        }
        let warnings = SecretFiles.warnings(for: config)
        for warning in warnings {
            logger.warning(
                "a secret file is readable by other users",
                metadata: ["config.key": "\(warning.key)", "reason": "\(warning.message)"])
        }

        if keys.isEmpty && config.auth.jwksURLs.isEmpty && issues.isEmpty {
            fail("auth.keys", "no key could be loaded, so no token can be verified")
        }
        guard issues.isEmpty else { throw Failure(issues: issues) }

        let policy = ClaimsPolicy(
            issuer: config.auth.issuer, audience: config.auth.audience, leewaySeconds: config.auth.leewaySeconds,
            userClaim: config.auth.userClaim, teamClaim: config.auth.teamClaim, groupsClaim: config.auth.groupsClaim,
            revokedTokenIDs: revoked)
        let authenticator = Authenticator(policy: policy, maxTokenBytes: config.auth.maxTokenBytes, keys: KeyRing(keys))
        return GatewayGeneration(
            config: config, authenticator: authenticator, staticKeys: KeyRing(keys), backendTokens: tokens,
            backendTLS: backendTLS, serverTLS: serverTLS,
            adminToken: adminToken, adminReadToken: adminReadToken, certificateNotAfter: notAfter,
            redisPassword: redisPassword, sentinelPassword: sentinelPassword, redisTLS: redisTLS,
            recordSecret: recordSecret, warnings: warnings + sharedStateWarnings(config))
    }
}

/// What `sparkgate config check` warns about in the shared state's setup.
private func sharedStateWarnings(_ config: SparkgateConfig) -> [ConfigIssue] {
    guard config.state.kind == .redis, let sentinel = config.state.redis.sentinel, sentinel.passwordFile == nil else {
        return []
    }
    return [
        ConfigIssue(
            file: config.file, key: "state.redis.sentinel.password_file",
            message:
                "the sentinels have no password: any process that reaches them can name another master, and the replicas would send it the Redis password; give the sentinels a password (requirepass) and its file here"
        )
    ]
}

private struct TLSLoadError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
