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
        // One buffer for the name, without interpolation or a lowercased copy (this runs on every call).
        var name: [UInt8] = []
        name.reserveCapacity(team.utf8.count + user.utf8.count + clientSessionID.utf8.count + 2)
        name.append(contentsOf: team.utf8)
        name.append(UInt8(ascii: "/"))
        name.append(contentsOf: user.utf8)
        name.append(UInt8(ascii: "/"))
        if clientSessionID.utf8.allSatisfy({ $0 < 0x80 }) {
            for c in clientSessionID.utf8 { name.append(c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") ? c + 32 : c) }
        } else {
            name.append(contentsOf: clientSessionID.lowercased().utf8)
        }
        hasher.update(data: name)
        var bytes = Array(hasher.finalize().prefix(16))
        bytes[6] = bytes[6] & 0x0F | 0x50
        bytes[8] = bytes[8] & 0x3F | 0x80
        return UUIDText.format(bytes)
    }
}
