import NIOHPACK
import SparkgateCore

/// The HEADERS of a request to a backend, for proxied calls and Sparkgate's own calls alike: rebuilt
/// pseudo-headers, the client's metadata through `MetadataPolicy`, and the backend's token in place of the
/// client's.
package enum BackendRequestHeaders {
    package static func make(
        path: String, endpoint: BackendEndpoint, token: String?, forwarding client: HPACKHeaders? = nil,
        extra: [(String, String)] = []
    ) -> HPACKHeaders {
        var h = HPACKHeaders()
        h.reserveCapacity((client?.count ?? 0) + extra.count + 6)
        h.add(name: ":method", value: "POST")
        h.add(name: ":scheme", value: endpoint.tls ? "https" : "http")
        h.add(name: ":path", value: path)
        h.add(name: ":authority", value: endpoint.authority)
        if let client {
            for (name, value, indexing) in client where MetadataPolicy.forwardsRequestHeader(name) {
                h.add(name: name, value: value, indexing: indexing)
            }
        } else {
            h.add(name: "content-type", value: "application/grpc")
            h.add(name: "te", value: "trailers")
        }
        for (name, value) in extra { h.add(name: name, value: value) }
        if let token {
            h.add(name: "authorization", value: "Bearer \(token)", indexing: .neverIndexed)
        }
        return h
    }
}
