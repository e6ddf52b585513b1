import NIOSSL
import SparkgateCore

/// One address of a backend, with how to reach it.
struct BackendEndpoint: Hashable, Sendable, CustomStringConvertible {
    var backend: String
    var address: HostPort
    var tls: Bool
    /// `host:port` as sent in `:authority`, formatted once rather than per call.
    let authority: String

    init(backend: String, address: HostPort, tls: Bool) {
        self.backend = backend
        self.address = address
        self.tls = tls
        self.authority = address.description
    }

    var description: String { authority }

    /// Picks the endpoint for a session by rendezvous hashing, so every replica sends a session to the same
    /// endpoint and adding an endpoint moves only the sessions it wins.
    static func choose(_ endpoints: [HostPort], for sessionID: String) -> HostPort {
        precondition(!endpoints.isEmpty)
        if endpoints.count == 1 { return endpoints[0] }
        var best = endpoints[0]
        var bestScore: UInt64 = 0
        for endpoint in endpoints {
            let score = fnv1a("\(endpoint)|\(sessionID)")
            if score >= bestScore {
                best = endpoint
                bestScore = score
            }
        }
        return best
    }

    private static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return h
    }
}
