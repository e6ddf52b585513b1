import ArgumentParser
import Crypto
import Foundation
import SwiftASN1
import X509

struct Certs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Development certificates.",
        subcommands: [Generate.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a development CA, a server certificate and a client certificate (for mTLS tests).",
            discussion: """
                Writes ca.crt, ca.key, server.crt, server.key, client.crt and client.key into DIR. For development
                and tests only: the CA key sits next to the certificates.

                Example:
                  sparkgate certs generate --out config/dev --host localhost --host 127.0.0.1
                Then trust ca.crt in PySpark with GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=config/dev/ca.crt.
                """)

        @Option(help: "The directory to write into (created if missing).")
        var out: String

        @Option(name: .customLong("host"), help: "A DNS name or IP address the server certificate covers (repeatable).")
        var hosts: [String] = ["localhost", "127.0.0.1"]

        @Option(help: "Validity in days.")
        var days = 365

        func run() throws {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let now = Date()
            let notBefore = now.addingTimeInterval(-3600)
            let notAfter = now.addingTimeInterval(Double(days) * 86_400)

            let caKey = P256.Signing.PrivateKey()
            let caName = try DistinguishedName {
                OrganizationName("Sparkgate")
                CommonName("Sparkgate development CA")
            }
            let caSKI = SubjectKeyIdentifier(hash: Certificate.PublicKey(caKey.publicKey))
            let ca = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(caKey.publicKey), notValidBefore: notBefore,
                notValidAfter: notAfter,
                issuer: caName, subject: caName, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                    Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                    caSKI
                },
                issuerPrivateKey: .init(caKey))

            func leaf(
                _ name: String, usage: ExtendedKeyUsage.Usage, sans: [GeneralName]
            ) throws -> (Certificate, P256.Signing.PrivateKey) {
                let key = P256.Signing.PrivateKey()
                let subject = try DistinguishedName {
                    OrganizationName("Sparkgate")
                    CommonName(name)
                }
                let cert = try Certificate(
                    version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: notBefore,
                    notValidAfter: notAfter,
                    issuer: caName, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                    extensions: try Certificate.Extensions {
                        Critical(BasicConstraints.notCertificateAuthority)
                        Critical(KeyUsage(digitalSignature: true))
                        try ExtendedKeyUsage([usage])
                        SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
                        AuthorityKeyIdentifier(keyIdentifier: caSKI.keyIdentifier)
                        if !sans.isEmpty { SubjectAlternativeNames(sans) }
                    },
                    issuerPrivateKey: .init(caKey))
                return (cert, key)
            }

            let sans = try hosts.map { host -> GeneralName in
                if let ip = Self.ipBytes(host) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(ip))) }
                guard !host.isEmpty else { throw ValidationError("--host must not be empty") }
                return .dnsName(host)
            }
            let (server, serverKey) = try leaf(hosts.first ?? "localhost", usage: .serverAuth, sans: sans)
            let (client, clientKey) = try leaf("sparkgate-test-client", usage: .clientAuth, sans: [])

            try write("ca.crt", try ca.serializeAsPEM().pemString, private: false)
            try write("ca.key", caKey.pemRepresentation, private: true)
            try write(
                "server.crt", try server.serializeAsPEM().pemString + "\n" + (try ca.serializeAsPEM().pemString),
                private: false)
            try write("server.key", serverKey.pemRepresentation, private: true)
            try write("client.crt", try client.serializeAsPEM().pemString, private: false)
            try write("client.key", clientKey.pemRepresentation, private: true)
            print(
                "wrote ca.crt, server.crt, server.key, client.crt, client.key to \(out) (server names: \(hosts.joined(separator: ", ")))"
            )
        }

        private func write(_ name: String, _ text: String, private isPrivate: Bool) throws {
            let path = (out as NSString).appendingPathComponent(name)
            let ok = FileManager.default.createFile(
                atPath: path, contents: Data((text.hasSuffix("\n") ? text : text + "\n").utf8),
                attributes: [.posixPermissions: isPrivate ? 0o600 : 0o644])
            if !ok { throw ValidationError("cannot write \(path)") }
        }

        static func ipBytes(_ host: String) -> [UInt8]? {
            var v4 = in_addr()
            if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
            var v6 = in6_addr()
            if inet_pton(AF_INET6, host, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
            return nil
        }
    }
}
