import ArgumentParser
import Crypto
import Foundation
import JWTKit
import SparkgateCore

struct JWKS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jwks",
        abstract: "Print the public JWKS of the configured keys (HMAC keys are never printed).",
        discussion: """
            Example:
              sparkgate jwks --config config/sparkgate.yaml > /srv/www/.well-known/jwks.json
            Another gateway can then trust these keys through auth.jwks_urls or auth.jwks_files.
            """)

    @Option(name: .shortAndLong, help: "The configuration file.")
    var config = "config/sparkgate.yaml"

    func run() throws {
        let cfg: SparkgateConfig
        do { cfg = try Bootstrap.config(config) } catch { throw ExitCode.failure }
        var keys: [[String: String]] = []
        for (index, key) in cfg.auth.keys.enumerated() where !key.algorithm.isHMAC {
            let usePrivate = key.publicKey == nil
            guard let file = usePrivate ? key.privateKey : key.publicKey,
                let data = FileManager.default.contents(atPath: file)
            else {
                Bootstrap.printError("\(config): auth.keys[\(index)]: cannot read the key file")
                throw ExitCode.failure
            }
            let pem = String(decoding: data, as: UTF8.self)
            do {
                var jwk = ["kid": key.kid, "alg": key.algorithm.rawValue, "use": "sig"]
                switch key.algorithm {
                case .es256:
                    let pub =
                        usePrivate
                        ? try P256.Signing.PrivateKey(pemRepresentation: pem).publicKey
                        : try P256.Signing.PublicKey(pemRepresentation: pem)
                    let point = Array(pub.x963Representation)
                    jwk.merge([
                        "kty": "EC", "crv": "P-256", "x": Base64URL.encode(point[1..<33]),
                        "y": Base64URL.encode(point[33..<65]),
                    ]) { $1 }
                case .es384:
                    let pub =
                        usePrivate
                        ? try P384.Signing.PrivateKey(pemRepresentation: pem).publicKey
                        : try P384.Signing.PublicKey(pemRepresentation: pem)
                    let point = Array(pub.x963Representation)
                    jwk.merge([
                        "kty": "EC", "crv": "P-384", "x": Base64URL.encode(point[1..<49]),
                        "y": Base64URL.encode(point[49..<97]),
                    ]) { $1 }
                case .eddsa:
                    let pub =
                        usePrivate
                        ? try Curve25519.Signing.PrivateKey(pemRepresentation: pem).publicKey
                        : try Curve25519.Signing.PublicKey(pemRepresentation: pem)
                    jwk.merge(["kty": "OKP", "crv": "Ed25519", "x": Base64URL.encode(pub.rawRepresentation)]) { $1 }
                default:
                    let pub =
                        usePrivate
                        ? try Insecure.RSA.PrivateKey(pem: pem).publicKey : try Insecure.RSA.PublicKey(pem: pem)
                    let (n, e) = try pub.getKeyPrimitives()
                    jwk.merge(["kty": "RSA", "n": Base64URL.encode(n), "e": Base64URL.encode(e)]) { $1 }
                }
                keys.append(jwk)
            } catch {
                Bootstrap.printError(
                    "\(config): auth.keys[\(index)]: \(file) is not a PEM key for \(key.algorithm.rawValue): \(error)")
                throw ExitCode.failure
            }
        }
        let data = try JSONSerialization.data(withJSONObject: ["keys": keys], options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
