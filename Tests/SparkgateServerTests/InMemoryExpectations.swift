import NIOHTTP2
import SparkgateCore
import SparkgateTestSupport
import Testing

/// A gRPC status as it stands in the `grpc-status` trailer.
func grpcStatus(_ code: GRPCStatusCode) -> String { String(code.rawValue) }

/// Expects the in-memory client's call `id` to have ended with `code`, its message containing `text`.
func expectAnswer(
    _ g: InMemoryGateway, _ id: HTTP2StreamID, _ code: GRPCStatusCode, saying text: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let answer = g.recorder.streams[id]
    #expect(answer?.status == grpcStatus(code), sourceLocation: sourceLocation)
    #expect(
        answer?.message?.contains(text) == true, "\(answer?.message ?? "no message")", sourceLocation: sourceLocation)
}
