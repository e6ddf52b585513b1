import Foundation
import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import SparkgateAuth
import SparkgateCore

/// One client RPC, from its HEADERS to its trailers, glued to one backend stream on the same event loop.
///
/// The life of a request is a straight line: read the head → authenticate → read the first message →
/// admit it against the session ledger and quotas → rewrite its identity fields → open the backend stream →
/// pump messages both ways → forward the trailers → account. Flow-control window goes back to each sender
/// only as the other side takes the bytes (`FlowCredit`), so HTTP/2 flow control holds back whichever peer
/// is faster, end to end.
final class ProxyCall {
    enum Phase {
        case head
        case authorizing
        case awaitingFirstMessage
        case connecting
        case forwarding
        case closed
    }

    /// Messages at least this large are tracked until written out; smaller ones cannot build up a backlog
    /// that matters before the peer's window stops them.
    static let trackedMessageBytes = 16 << 10

    let runtime: GatewayRuntime
    let frontend: FrontendConnectionHandler
    let streamID: HTTP2StreamID
    let peer: String
    var phase = Phase.head
    let startedAt = NIODeadline.now()

    // Set by the head.
    var state: GatewayState
    var head = RequestHead()
    var clientHeaders = HPACKHeaders()
    var method = SparkConnectMethod.other("")
    var verified: VerifiedToken?
    var team: SparkgateConfig.Team?
    var requests: GRPCMessageReader
    var deadline: Scheduled<Void>?

    // Set by the first message.
    var firstEnvelope: RequestEnvelope?
    var rewrite: RequestRewrite?
    var responseRewrite = ResponseRewrite()
    var sessionKey: SessionKey?
    var operationKey: OperationKey?
    var admitted = false
    var registration: UInt64?
    var resultLimitActive = false
    var backendName = ""

    // Request side (client → backend).
    var clientEnded = false
    var sentEndToBackend = false
    var pendingToBackend: [[ByteBuffer]] = []
    var backend: BackendConnectionHandler?
    var backendStreamID: HTTP2StreamID?
    var requestCredit = FlowCredit(highWatermark: HTTP2Tuning.streamWindow, lowWatermark: HTTP2Tuning.streamWindow / 4)

    // Response side (backend → client).
    var responses: GRPCMessageReader
    var responseStarted = false
    var backendEnded = false
    var responseCredit = FlowCredit(highWatermark: HTTP2Tuning.streamWindow, lowWatermark: HTTP2Tuning.streamWindow / 4)
    var sawResultComplete = false
    var firstResponseSeen = false
    var interruptedIDs: [String] = []

    var summary: CallSummary

    init(runtime: GatewayRuntime, frontend: FrontendConnectionHandler, streamID: HTTP2StreamID, peer: String) {
        self.runtime = runtime
        self.frontend = frontend
        self.streamID = streamID
        self.peer = peer
        let state = runtime.state
        self.state = state
        self.requests = GRPCMessageReader(maxMessageBytes: state.config.maxMessageBytes)
        self.responses = GRPCMessageReader(maxMessageBytes: state.config.maxMessageBytes)
        self.summary = CallSummary(start: WallClock.now(), method: "", peer: peer)
    }

    var eventLoop: any EventLoop { frontend.eventLoop }
    let allocator = ByteBufferAllocator()

    // MARK: Client events

    func start(_ headers: HPACKHeaders, endStream: Bool) {
        receivedHead(headers, endStream: endStream)
    }

    func clientHeaders(_ headers: HPACKHeaders, endStream: Bool) {
        // Trailers from a client carry nothing gRPC defines; they end the request.
        if endStream { receivedClientEnd() }
    }

    func clientData(_ buffer: ByteBuffer, endStream: Bool, flowControlled: Int) {
        guard phase != .closed else { return }
        if !endStream { requestCredit.received(flowControlled) }
        receivedRequestData(buffer, endStream: endStream)
        returnRequestCredit()
    }

    /// NIO closed the client stream (both sides done, or reset, or the connection is gone).
    func clientStreamClosed() {
        if phase != .closed { clientCancelled() }
    }

    // MARK: Writing

    func writeToClient(_ payload: HTTP2Frame.FramePayload) {
        frontend.write(payload, on: streamID, promise: nil)
    }

    /// Writes one message (its segments) to the client. Large ones are tracked until they are out, so the
    /// backend's window comes back only as the client takes the bytes.
    func writeMessageToClient(_ segments: [ByteBuffer]) {
        write(segments, to: frontend, on: streamID, endStream: false, credit: \.responseCredit) { $0.returnResponseCredit(force: true) }
    }

    func writeMessageToBackend(_ segments: [ByteBuffer], endStream: Bool = false) {
        guard let backend, let backendStreamID else { return }
        if endStream { sentEndToBackend = true }
        write(segments, to: backend, on: backendStreamID, endStream: endStream, credit: \.requestCredit) { $0.returnRequestCredit(force: true) }
    }

    private func write(
        _ segments: [ByteBuffer], to sink: any FrameSink, on id: HTTP2StreamID, endStream: Bool,
        credit: ReferenceWritableKeyPath<ProxyCall, FlowCredit>, drained: @escaping (ProxyCall) -> Void
    ) {
        let size = segments.reduce(0) { $0 + $1.readableBytes }
        var promise: EventLoopPromise<Void>?
        if size >= Self.trackedMessageBytes {
            self[keyPath: credit].accommodate(messageBytes: size, ceiling: HTTP2Tuning.maxBufferedPerStream)
            self[keyPath: credit].wrote(size)
            let p = eventLoop.makePromise(of: Void.self)
            p.futureResult.whenComplete { [self] _ in
                self[keyPath: credit].flushed(size)
                drained(self)
            }
            promise = p
        }
        for (index, segment) in segments.enumerated() {
            let last = index == segments.count - 1
            sink.write(.data(.init(data: .byteBuffer(segment), endStream: last && endStream)), on: id, promise: last ? promise : nil)
        }
    }

    func returnRequestCredit(force: Bool = false) {
        guard phase == .forwarding, !clientEnded else { return }
        let bytes = requestCredit.take(force: force)
        if bytes > 0 {
            frontend.returnCredit(bytes, on: streamID)
            if force { frontend.loop.flushDirty() }
        }
    }

    func returnResponseCredit(force: Bool = false) {
        guard phase == .forwarding, !backendEnded, let backend, let backendStreamID else { return }
        let bytes = responseCredit.take(force: force)
        if bytes > 0 {
            backend.returnCredit(bytes, on: backendStreamID)
            if force { frontend.loop.flushDirty() }
        }
    }

    var secondsSinceStart: Double {
        Double((NIODeadline.now() - startedAt).nanoseconds) / 1e9
    }
}
