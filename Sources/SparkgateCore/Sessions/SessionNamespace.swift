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
        // The name "team/user/session" fed in pieces, without building it (this runs on every call).
        Self.feed(team, to: &hasher)
        Self.feed("/", to: &hasher)
        Self.feed(user, to: &hasher)
        Self.feed("/", to: &hasher)
        Self.feed(UUIDText.lowercased(clientSessionID), to: &hasher)
        let digest = hasher.finalize()
        var uuid: (UInt64, UInt64) = (0, 0)
        return withUnsafeMutableBytes(of: &uuid) { bytes in
            digest.withUnsafeBytes { bytes.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(16))) }
            bytes[6] = bytes[6] & 0x0F | 0x50
            bytes[8] = bytes[8] & 0x3F | 0x80
            return UUIDText.format(UnsafeRawBufferPointer(bytes))
        }
    }

    private static func feed(_ text: String, to hasher: inout Insecure.SHA1) {
        var text = text
        text.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
    }
}

extension SessionNamespace {
    /// The last backend id one connection derived. A client sends a session's calls over one connection, and
    /// the derivation (SHA-1 through swift-crypto, cold between sequential calls) was the dearest step of a
    /// call's first message. Keyed by everything the id depends on, so a reload's new namespace or another
    /// identity on the connection derives again. One event loop uses it (not `Sendable`).
    public final class Memo {
        private var namespace: SessionNamespace?
        private var team = ""
        private var user = ""
        private var clientSessionID = ""
        private var backendID = ""

        public init() {}

        public func backendID(
            _ namespace: SessionNamespace, team: String, user: String, clientSessionID: String
        ) -> String {
            if clientSessionID == self.clientSessionID, user == self.user, team == self.team,
                namespace == self.namespace
            {
                return backendID
            }
            backendID = namespace.backendID(team: team, user: user, clientSessionID: clientSessionID)
            (self.namespace, self.team, self.user, self.clientSessionID) = (namespace, team, user, clientSessionID)
            return backendID
        }
    }
}
