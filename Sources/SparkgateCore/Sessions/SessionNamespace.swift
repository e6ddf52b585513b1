import Crypto

/// Maps a client's session id to the id the backend sees: `UUIDv5(namespace, team "/" user "/" client id)`.
///
/// The id is name-based, so every replica and every restart computes the same backend id without sharing
/// state, and two users who send the same client id reach two different backend sessions.
public struct SessionNamespace: Sendable, Equatable {
    private let namespace: [UInt8]

    public init?(_ namespace: String) {
        guard let bytes = UUIDText.parse(namespace) else { return nil }
        self.namespace = bytes
    }

    public func backendID(team: String, user: String, clientSessionID: String) -> String {
        var hasher = Insecure.SHA1()
        hasher.update(data: namespace)
        hasher.update(data: Array("\(team)/\(user)/\(clientSessionID.lowercased())".utf8))
        var bytes = Array(hasher.finalize().prefix(16))
        bytes[6] = bytes[6] & 0x0F | 0x50
        bytes[8] = bytes[8] & 0x3F | 0x80
        return UUIDText.format(bytes)
    }
}
