/// What a new connection speaks, from its first bytes: a TLS handshake, or HTTP/2 in plaintext (a client
/// that forgot `;use_ssl=true`), so the TLS port can answer the latter with an error it can read.
public enum FirstBytes: Sendable, Equatable {
    case tls
    case plaintextHTTP2
    /// Neither: the TLS handshake will fail with its own reason.
    case other
    /// Too few bytes to tell.
    case needMore

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    public static func classify(_ bytes: some Collection<UInt8>) -> FirstBytes {
        guard let first = bytes.first else { return .needMore }
        // A TLS record of type handshake (22).
        if first == 0x16 { return .tls }
        let prefix = bytes.prefix(preface.count)
        guard prefix.elementsEqual(preface.prefix(prefix.count)) else { return .other }
        return prefix.count == preface.count ? .plaintextHTTP2 : .needMore
    }
}
