import Crypto
import SparkgateCore
import Synchronization

/// Tokens already verified, keyed by a SHA-256 of the token (the cache never holds a token), kept until
/// they expire, so steady traffic pays one hash per RPC instead of a signature check.
final class TokenCache: Sendable {
    struct Entry: Sendable {
        var token: VerifiedToken
        var kid: String
    }

    struct Key: Hashable, Sendable {
        var a: UInt64, b: UInt64, c: UInt64, d: UInt64
    }

    private let entries = Mutex<[Key: Entry]>([:])
    let capacity: Int

    init(capacity: Int = 10_000) {
        self.capacity = capacity
    }

    static func key(_ token: Substring) -> Key {
        var sha = SHA256()
        var t = token
        t.withUTF8 { sha.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        return sha.finalize().withUnsafeBytes { raw in
            Key(
                a: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                b: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                c: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                d: raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        }
    }

    func lookup(_ key: Key) -> Entry? {
        entries.withLock { $0[key] }
    }

    func insert(_ key: Key, _ entry: Entry, now: Double) {
        entries.withLock { table in
            if table.count >= capacity {
                table = table.filter { $0.value.token.expiresAt > now }
                // Still full of live tokens: drop an arbitrary half rather than grow without bound.
                if table.count >= capacity {
                    var kept = 0
                    table = table.filter { _ in
                        kept += 1
                        return kept % 2 == 0
                    }
                }
            }
            table[key] = entry
        }
    }

    func remove(_ key: Key) {
        _ = entries.withLock { $0.removeValue(forKey: key) }
    }

    var count: Int { entries.withLock { $0.count } }
}
