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
}
