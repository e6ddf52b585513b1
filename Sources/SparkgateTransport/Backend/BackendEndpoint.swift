import NIOSSL
import SparkgateCore

/// One address of a backend, with how to reach it.
package struct BackendEndpoint: Hashable, Sendable, CustomStringConvertible {
    package var backend: String
    package var address: HostPort
    package var tls: Bool
    /// `host:port` as sent in `:authority`, formatted once rather than per call.
    package let authority: String

    package init(backend: String, address: HostPort, tls: Bool) {
        self.backend = backend
        self.address = address
        self.tls = tls
        self.authority = address.description
    }

    package var description: String { authority }
}
