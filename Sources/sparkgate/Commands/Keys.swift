import ArgumentParser
import Crypto
import CryptoExtras
import Foundation
import SparkgateCore

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Signing keys for team tokens.",
        subcommands: [Generate.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a signing key pair: KID.key.pem and KID.pub.pem (HS256/384/512: KID.secret).",
            discussion: """
                Example:
                  sparkgate keys generate --algorithm ES256 --kid prod-2026-11 --out /etc/sparkgate/keys
                Then list it under auth.keys with kid, algorithm, public_key and (on the machine that issues
                tokens) private_key. Keep the private key off the gateway if another machine issues tokens.
                """)

        @Option(help: "ES256, ES384, EdDSA, RS256, RS384, RS512, PS256, PS384, PS512, HS256, HS384 or HS512.")
        var algorithm: String

        @Option(help: "The key id tokens will carry in their 'kid' header.")
        var kid: String

        @Option(help: "The directory to write into (created if missing).")
        var out: String

        @Flag(help: "Replace existing files.")
        var force = false

        func run() throws {
            guard let alg = SparkgateConfig.Algorithm(rawValue: algorithm) else {
                throw ValidationError(
                    "--algorithm '\(algorithm)' is not one of \(SparkgateConfig.Algorithm.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            guard !kid.isEmpty, kid.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                throw ValidationError("--kid must be letters, digits, '-', '_' or '.'")
            }
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            if alg.isHMAC {
                let secret = SymmetricKey(size: .init(bitCount: 512)).withUnsafeBytes { Base64URL.encode($0) }
                let path = try write("\(kid).secret", secret, private: true)
                print("wrote \(path) (\(alg.rawValue) secret)")
                return
            }
            let (privatePEM, publicPEM): (String, String)
            switch alg {
            case .es256:
                let k = P256.Signing.PrivateKey()
                (privatePEM, publicPEM) = (k.pemRepresentation, k.publicKey.pemRepresentation)
            case .es384:
                let k = P384.Signing.PrivateKey()
                (privatePEM, publicPEM) = (k.pemRepresentation, k.publicKey.pemRepresentation)
            case .eddsa:
                let k = Curve25519.Signing.PrivateKey()
                (privatePEM, publicPEM) = (k.pemRepresentation, k.publicKey.pemRepresentation)
            default:
                let k = try _RSA.Signing.PrivateKey(keySize: .bits2048)
                (privatePEM, publicPEM) = (k.pemRepresentation, k.publicKey.pemRepresentation)
            }
            let priv = try write("\(kid).key.pem", privatePEM, private: true)
            let pub = try write("\(kid).pub.pem", publicPEM, private: false)
            print("wrote \(priv) and \(pub) (\(alg.rawValue))")
        }

        private func write(_ name: String, _ text: String, private isPrivate: Bool) throws -> String {
            let path = (out as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: path) && !force {
                throw ValidationError("\(path) exists; pass --force to replace it")
            }
            let data = Data((text.hasSuffix("\n") ? text : text + "\n").utf8)
            guard
                FileManager.default.createFile(
                    atPath: path, contents: data, attributes: [.posixPermissions: isPrivate ? 0o600 : 0o644])
            else {
                throw ValidationError("cannot write \(path)")
            }
            return path
        }
    }
}
