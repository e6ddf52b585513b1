import Foundation
import JWTKit
import SparkgateCore

/// Turns configured key files and JWKS documents into verification keys, through jwt-kit.
public enum KeyLoader {
    public struct Failure: Error, CustomStringConvertible {
        public var key: String
        public var message: String
        public var description: String { "\(key): \(message)" }
    }

    /// Loads every configured key; each failure names its config key (`auth.keys[1].public_key`).
    public static func load(_ keys: [SparkgateConfig.Key]) async throws(Failure) -> [VerificationKey] {
        var out: [VerificationKey] = []
        for (index, key) in keys.enumerated() {
            out.append(try await load(key, path: "auth.keys[\(index)]"))
        }
        return out
    }

    static func load(_ key: SparkgateConfig.Key, path: String) async throws(Failure) -> VerificationKey {
        let collection = JWTKeyCollection()
        let kid = JWKIdentifier(string: key.kid)
        do {
            if key.algorithm.isHMAC {
                await collection.add(
                    hmac: HMACKey(from: try hmacSecret(key, path: path)), digestAlgorithm: digest(key.algorithm),
                    kid: kid)
            } else {
                let usePrivate = key.publicKey == nil
                let file = (usePrivate ? key.privateKey : key.publicKey) ?? ""
                let configKey = "\(path).\(usePrivate ? "private_key" : "public_key")"
                let pem = String(decoding: try readFile(file, configKey: configKey), as: UTF8.self)
                do {
                    try await add(pem: pem, isPrivate: usePrivate, algorithm: key.algorithm, kid: kid, to: collection)
                } catch {
                    throw Failure(
                        key: configKey,
                        message:
                            "\(file) is not a PEM \(usePrivate ? "private" : "public") key for \(key.algorithm.rawValue): \(error)"
                    )
                }
            }
            let verifier = try await collection.getKey(for: kid)
            return VerificationKey(kid: key.kid, algorithm: key.algorithm, verifier: verifier, origin: "config")
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(key: path, message: "cannot load key '\(key.kid)': \(error)")
        }
    }

    /// A collection holding the configured private key of `key`, for `sparkgate token issue`.
    public static func signingCollection(
        _ key: SparkgateConfig.Key, path: String
    ) async throws(Failure) -> JWTKeyCollection {
        let collection = JWTKeyCollection()
        let kid = JWKIdentifier(string: key.kid)
        if key.algorithm.isHMAC {
            await collection.add(
                hmac: HMACKey(from: try hmacSecret(key, path: path)), digestAlgorithm: digest(key.algorithm), kid: kid)
            return collection
        }
        guard let file = key.privateKey else {
            throw Failure(
                key: "\(path).private_key", message: "key '\(key.kid)' has no private_key, so it cannot sign tokens")
        }
        let pem = String(decoding: try readFile(file, configKey: "\(path).private_key"), as: UTF8.self)
        do {
            try await add(pem: pem, isPrivate: true, algorithm: key.algorithm, kid: kid, to: collection)
        } catch {
            throw Failure(
                key: "\(path).private_key",
                message: "\(file) is not a PEM private key for \(key.algorithm.rawValue): \(error)")
        }
        return collection
    }

    private static func add(
        pem: String, isPrivate: Bool, algorithm: SparkgateConfig.Algorithm, kid: JWKIdentifier,
        to collection: JWTKeyCollection
    ) async throws {
        switch algorithm {
        case .es256:
            if isPrivate {
                await collection.add(ecdsa: try ES256PrivateKey(pem: pem), kid: kid)
            } else {
                await collection.add(ecdsa: try ES256PublicKey(pem: pem), kid: kid)
            }
        case .es384:
            if isPrivate {
                await collection.add(ecdsa: try ES384PrivateKey(pem: pem), kid: kid)
            } else {
                await collection.add(ecdsa: try ES384PublicKey(pem: pem), kid: kid)
            }
        case .rs256, .rs384, .rs512:
            let rsa: any RSAKey =
                isPrivate ? try Insecure.RSA.PrivateKey(pem: pem) : try Insecure.RSA.PublicKey(pem: pem)
            await collection.add(rsa: rsa, digestAlgorithm: digest(algorithm), kid: kid)
        case .ps256, .ps384, .ps512:
            let rsa: any RSAKey =
                isPrivate ? try Insecure.RSA.PrivateKey(pem: pem) : try Insecure.RSA.PublicKey(pem: pem)
            await collection.add(pss: rsa, digestAlgorithm: digest(algorithm), kid: kid)
        case .eddsa:
            if isPrivate {
                await collection.add(eddsa: try EdDSA.PrivateKey(pem: pem), kid: kid)
            } else {
                await collection.add(eddsa: try EdDSA.PublicKey(pem: pem), kid: kid)
            }
        case .hs256, .hs384, .hs512:
            throw Failure(key: "", message: "HMAC keys are not PEM files")
        }
    }

    /// An HMAC key's secret file, without trailing newlines, at least as long as the hash output (RFC 7518 §3.2).
    static func hmacSecret(_ key: SparkgateConfig.Key, path: String) throws(Failure) -> [UInt8] {
        let file = key.secretFile ?? ""
        let secret = trimTrailingNewlines(try readFile(file, configKey: "\(path).secret_file"))
        let minimum = key.algorithm == .hs512 ? 64 : key.algorithm == .hs384 ? 48 : 32
        guard secret.count >= minimum else {
            throw Failure(
                key: "\(path).secret_file",
                message:
                    "\(file) holds \(secret.count) bytes; an \(key.algorithm.rawValue) secret needs at least \(minimum)"
            )
        }
        return secret
    }

    static func digest(_ algorithm: SparkgateConfig.Algorithm) -> DigestAlgorithm {
        switch algorithm {
        case .hs384, .rs384, .ps384, .es384: .sha384
        case .hs512, .rs512, .ps512: .sha512
        default: .sha256
        }
    }

    static func readFile(_ file: String, configKey: String) throws(Failure) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw Failure(key: configKey, message: "cannot read \(file)")
        }
        return Array(data)
    }

    static func trimTrailingNewlines(_ bytes: [UInt8]) -> [UInt8] {
        var b = bytes
        while let last = b.last, last == 0x0A || last == 0x0D { b.removeLast() }
        return b
    }
}
