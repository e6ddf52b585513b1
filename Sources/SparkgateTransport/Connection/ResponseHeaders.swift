import Foundation
import NIOHPACK
import SparkgateCore

/// The header blocks Sparkgate writes to clients.
package enum ResponseHeaders {
    /// The backend's head or trailers through `MetadataPolicy`; `:status` is added for a response head or a
    /// trailers-only response.
    package static func forwarded(_ backend: HPACKHeaders, withStatus: Bool) -> HPACKHeaders {
        var h = HPACKHeaders()
        h.reserveCapacity(backend.count + 1)
        if withStatus { h.add(name: ":status", value: "200") }
        for (name, value, indexing) in backend where MetadataPolicy.forwardsResponseHeader(name) {
            h.add(name: name, value: value, indexing: indexing)
        }
        return h
    }

    /// Sparkgate's own status, as trailers (or a trailers-only response).
    package static func status(_ error: SparkgateError, trailersOnly: Bool) -> HPACKHeaders {
        var h = HPACKHeaders()
        if trailersOnly {
            h.add(name: ":status", value: "200")
            h.add(name: "content-type", value: "application/grpc")
        }
        h.add(name: "grpc-status", value: String(error.code.rawValue))
        h.add(name: "grpc-message", value: GRPCStatusMessage.encode(error.message))
        if let details = GRPCStatusDetails.encode(error) {
            h.add(name: "grpc-status-details-bin", value: Data(details).base64EncodedString())
        }
        return h
    }

    /// The head of a response Sparkgate gives itself.
    package static func localHead() -> HPACKHeaders {
        [":status": "200", "content-type": "application/grpc"]
    }

    /// OK trailers of a response Sparkgate gives itself.
    package static func okTrailers() -> HPACKHeaders {
        ["grpc-status": "0"]
    }

    /// The backend's status as its trailers carry it.
    package static func backendStatus(_ trailers: HPACKHeaders) -> BackendStatus {
        BackendStatus.parse(
            status: trailers.first(name: "grpc-status"), message: trailers.first(name: "grpc-message"),
            details: trailers.first(name: "grpc-status-details-bin"))
    }
}
