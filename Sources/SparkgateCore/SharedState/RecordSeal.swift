import Crypto

/// The secret the replicas share (`state.redis.secret_file`), and what it proves: each launched engine's
/// token is derived from it (so Redis never holds one), and every record a replica writes to Redis and every
/// message it publishes carries a seal made with it. A record or message whose seal does not verify was not
/// written by a replica, and nothing routes by it.
public struct RecordSeal: Sendable {
    /// What a seal covers; the kind is part of what is authenticated, so a seal of one kind never verifies
    /// as another.
    public enum Kind: String, Sendable, CaseIterable {
        /// A launched engine's record (`SharedEngine`).
        case engine
        /// Where a session lives (`SessionPlacement`).
        case placement
        /// How many sessions one replica holds on an engine.
        case engineUse = "engine-use"
        /// A message on a pub/sub channel.
        case message
    }

    private let key: SymmetricKey

    /// `secret` as read from the secret file (at least 32 bytes: `minimumSecretBytes`).
    public init(secret: some Sequence<UInt8>) {
        key = SymmetricKey(data: Array(secret))
    }

    /// A secret of this process alone: right for one replica, whose engines no other replica reaches.
    public static func random() -> RecordSeal {
        RecordSeal(secret: SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
    }

    public static let minimumSecretBytes = 32

    /// The token engine `engineID` accepts: any replica computes it from the id, nothing stores it.
    public func engineToken(_ engineID: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(
            for: Array("sparkgate engine token\u{0}\(engineID)".utf8), using: key)
        return Self.hex(code, bytes: 32)
    }

    /// The seal of `fields` as a record of `kind`: 128 bits of HMAC-SHA256, in hex.
    public func seal(_ kind: Kind, _ fields: [String]) -> String {
        Self.hex(HMAC<SHA256>.authenticationCode(for: Self.canonical(kind, fields), using: key), bytes: 16)
    }

    /// Whether `seal` is the seal of `fields` as a record of `kind`, compared in constant time.
    public func verifies(_ seal: String, _ kind: Kind, _ fields: [String]) -> Bool {
        let expected = Array(self.seal(kind, fields).utf8)
        let given = Array(seal.utf8)
        guard given.count == expected.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(given, expected) { difference |= a ^ b }
        return difference == 0
    }

    /// `body` sealed with the time it was sent (milliseconds), for a pub/sub channel.
    public func sealMessage(_ body: String, now: Double) -> String {
        let sent = String(Int64((now * 1000).rounded()))
        return SharedKeys.component(body) + SharedKeys.component(sent) + seal(.message, [body, sent])
    }

    /// A message as it was read off a channel.
    public enum Opened: Sendable, Equatable {
        case valid(body: String, seal: String)
        /// Its seal does not verify (or it is not a sealed message at all).
        case forged
        /// Sealed, but sent longer than the window ago (or ahead of now by more than it): a replay.
        case stale
    }

    /// Reads a sealed message; `window` is how far its send time may be from `now`, in seconds.
    public func openMessage(_ text: String, now: Double, window: Double) -> Opened {
        var rest = Substring(text)
        guard let body = SharedKeys.take(&rest), let sent = SharedKeys.take(&rest), let milliseconds = Int64(sent)
        else { return .forged }
        let seal = String(rest)
        guard verifies(seal, .message, [body, sent]) else { return .forged }
        guard abs(Double(milliseconds) / 1000 - now) <= window else { return .stale }
        return .valid(body: body, seal: seal)
    }

    /// The kind, then each field length-prefixed: no two field lists share an encoding.
    private static func canonical(_ kind: Kind, _ fields: [String]) -> [UInt8] {
        var bytes = Array(SharedKeys.component(kind.rawValue).utf8)
        for field in fields { bytes += Array(SharedKeys.component(field).utf8) }
        return bytes
    }

    private static func hex(_ code: HMAC<SHA256>.MAC, bytes count: Int) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(count * 2)
        code.withUnsafeBytes { raw in
            for byte in raw.prefix(count) {
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0xf)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
