import Crypto
import CryptoExtras
import Foundation
import JWTKit
import SparkgateAuth
import SparkgateCore

/// Real keys of every algorithm, written as PEM files the way operators configure them.
struct TestKeys {
    let directory: String
    var config: [SparkgateConfig.Key] = []

    init() throws {
        directory = NSTemporaryDirectory() + "sparkgate-auth-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for alg in SparkgateConfig.Algorithm.allCases {
            let kid = "k-\(alg.rawValue.lowercased())"
            if alg.isHMAC {
                let path = try write("\(kid).secret", String(repeating: "s3cr3t-", count: 10))
                config.append(.init(kid: kid, algorithm: alg, secretFile: path))
                continue
            }
            let (priv, pub): (String, String)
            switch alg {
            case .es256:
                let k = P256.Signing.PrivateKey()
                (priv, pub) = (k.pemRepresentation, k.publicKey.pemRepresentation)
            case .es384:
                let k = P384.Signing.PrivateKey()
                (priv, pub) = (k.pemRepresentation, k.publicKey.pemRepresentation)
            case .eddsa:
                let k = Curve25519.Signing.PrivateKey()
                (priv, pub) = (k.pemRepresentation, k.publicKey.pemRepresentation)
            default:
                let k = try _RSA.Signing.PrivateKey(keySize: .bits2048)
                (priv, pub) = (k.pemRepresentation, k.publicKey.pemRepresentation)
            }
            config.append(
                .init(
                    kid: kid, algorithm: alg, publicKey: try write("\(kid).pub.pem", pub),
                    privateKey: try write("\(kid).key.pem", priv)))
        }
    }

    func write(_ name: String, _ text: String) throws -> String {
        let path = directory + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func key(_ alg: SparkgateConfig.Algorithm) -> SparkgateConfig.Key { config.first { $0.algorithm == alg }! }

    func sign(
        _ claims: [String: ClaimValue], with alg: SparkgateConfig.Algorithm, header: [String: String]? = nil
    ) async throws -> String {
        let key = key(alg)
        let collection = try await KeyLoader.signingCollection(key, path: "test")
        var h = JWTHeader()
        h.typ = "JWT"
        return try await collection.sign(Claims(values: claims), kid: JWKIdentifier(string: key.kid), header: h)
    }

    /// A token built by hand: any header, any payload, signed (or not) with raw bytes.
    static func handmade(header: String, payload: String, signature: [UInt8]) -> String {
        "\(Base64URL.encode(Array(header.utf8))).\(Base64URL.encode(Array(payload.utf8))).\(Base64URL.encode(signature))"
    }

    func authenticator(revoked: Set<String> = [], keys: [SparkgateConfig.Key]? = nil) async throws -> Authenticator {
        let loaded = try await KeyLoader.load(keys ?? config)
        return Authenticator(
            policy: ClaimsPolicy(issuer: "iss-1", audience: "aud-1", leewaySeconds: 30, revokedTokenIDs: revoked),
            maxTokenBytes: 8192, keys: KeyRing(loaded))
    }
}

enum ClaimValue: Encodable, Sendable {
    case s(String), n(Double), a([String])
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .s(let v): try c.encode(v)
        case .n(let v): try c.encode(v)
        case .a(let v): try c.encode(v)
        }
    }
}

struct Claims: JWTPayload {
    var values: [String: ClaimValue]
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
    init(values: [String: ClaimValue]) { self.values = values }
    init(from decoder: any Decoder) throws { values = [:] }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        for (k, v) in values { try c.encode(v, forKey: Key(k)) }
    }
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
