// Cost of verifying a bearer token per RPC, with and without Sparkgate's verified-token cache, for each
// asymmetric algorithm and HS256. Benchmark only; prints nanoseconds per verification.
//
//   AuthCost [--iterations N]
import Crypto
import CryptoExtras
import Foundation
import JWTKit
import SparkgateAuth
import SparkgateCore

struct Claims: JWTPayload {
    var iss = "bench"
    var aud = "spark-connect"
    var sub = "alice"
    var team = "analytics"
    var exp = Int(Date().timeIntervalSince1970) + 3600
    var jti: String
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

var iterations = 20_000
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() { if a == "--iterations", let n = args.next().flatMap(Int.init) { iterations = n } }

let dir = NSTemporaryDirectory() + "sparkgate-authcost-\(UUID().uuidString)"
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
func write(_ name: String, _ text: String) throws -> String {
    let path = dir + "/" + name
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

let now = Date().timeIntervalSince1970
print("algorithm  uncached ns/verify  cached ns/verify  speed-up")
for alg in [SparkgateConfig.Algorithm.es256, .es384, .eddsa, .rs256, .ps256, .hs256] {
    let key: SparkgateConfig.Key
    switch alg {
    case .es256:
        let k = P256.Signing.PrivateKey()
        key = .init(
            kid: "k", algorithm: alg, publicKey: try write("es256.pub", k.publicKey.pemRepresentation),
            privateKey: try write("es256.key", k.pemRepresentation))
    case .es384:
        let k = P384.Signing.PrivateKey()
        key = .init(
            kid: "k", algorithm: alg, publicKey: try write("es384.pub", k.publicKey.pemRepresentation),
            privateKey: try write("es384.key", k.pemRepresentation))
    case .eddsa:
        let k = Curve25519.Signing.PrivateKey()
        key = .init(
            kid: "k", algorithm: alg, publicKey: try write("ed.pub", k.publicKey.pemRepresentation),
            privateKey: try write("ed.key", k.pemRepresentation))
    case .hs256:
        key = .init(kid: "k", algorithm: alg, secretFile: try write("hs.secret", String(repeating: "s", count: 64)))
    default:
        let k = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        key = .init(
            kid: "k", algorithm: alg, publicKey: try write("\(alg.rawValue).pub", k.publicKey.pemRepresentation),
            privateKey: try write("\(alg.rawValue).key", k.pemRepresentation))
    }
    let signer = try await KeyLoader.signingCollection(key, path: "bench")
    let verifyKeys = try await KeyLoader.load([key])
    let policy = ClaimsPolicy(issuer: "bench", audience: "spark-connect")
    // Distinct tokens defeat the cache: every verification is a full parse, signature and claims check.
    var tokens: [String] = []
    for i in 0..<min(iterations, 2000) {
        tokens.append(try await signer.sign(Claims(jti: "t\(i)"), kid: JWKIdentifier(string: "k")))
    }
    let uncachedRuns = tokens.count
    var start = DispatchTime.now().uptimeNanoseconds
    for token in tokens {
        // A fresh authenticator per token: nothing is cached.
        let auth = Authenticator(policy: policy, maxTokenBytes: 8192, keys: KeyRing(verifyKeys))
        guard case .verified = auth.authenticate(token[...], now: now) else {
            fatalError("\(alg.rawValue) token refused")
        }
    }
    let uncached = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(uncachedRuns)
    let auth = Authenticator(policy: policy, maxTokenBytes: 8192, keys: KeyRing(verifyKeys))
    _ = auth.authenticate(tokens[0][...], now: now)
    start = DispatchTime.now().uptimeNanoseconds
    for _ in 0..<iterations {
        guard case .verified = auth.authenticate(tokens[0][...], now: now) else { fatalError("cached token refused") }
    }
    let cached = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations)
    print(
        "\(alg.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0))  \(String(format: "%18.0f", uncached))  \(String(format: "%16.0f", cached))  \(String(format: "%7.0fx", uncached / cached))"
    )
}
try? FileManager.default.removeItem(atPath: dir)
