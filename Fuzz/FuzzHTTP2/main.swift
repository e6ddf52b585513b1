import NIOCore
import NIOHPACK
import SparkgateTransport

/// libFuzzer target: Sparkgate's libnghttp2 session, server side (a client's bytes) or client side (an engine's),
/// fed hostile bytes in arbitrary cuts while a peer of its own answers the way the gateway does: responses,
/// echoed DATA, trailers, refusals with RST_STREAM(NO_ERROR), resets, and answers that arrive after the stream
/// is gone (a call decided on another turn of the loop). The C callbacks hand Sparkgate raw pointers and
/// lengths; AddressSanitizer watches every use of them. Beyond not crashing:
/// - a write's completion is told once at most;
/// - no stream is heard of after it closed, nothing is kept for it, and no DATA is delivered that the peer did
///   not send;
/// - no header block delivered is larger than the limit the session was given;
/// - everything the session writes is whole HTTP/2 frames, and a session the input broke says so with GOAWAY.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 2 else { return 0 }
    let role: NGHTTP2Session.Role = data[0] & 1 == 0 ? .server : .client
    let peer = GatewayLikePeer(behaviour: data[0] >> 1)
    let cut = Int(data[1]) + 1
    guard let session = try? NGHTTP2Session(role: role, settings: peer.settings, allocator: ByteBufferAllocator())
    else { preconditionFailure("a session could not be made") }
    session.delegate = peer
    peer.session = session
    var frames = FrameChecker(expectsPreface: role == .client)

    var input: [UInt8] = role == .server ? Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) : []
    input += UnsafeBufferPointer(start: data + 2, count: size - 2)
    if role == .client { peer.openRequests() }
    var offset = 0
    while offset < input.count {
        var chunk = ByteBuffer()
        chunk.writeBytes(input[offset..<min(input.count, offset + cut)])
        offset += cut
        peer.fed += chunk.readableBytes
        do {
            try session.receive(chunk)
            peer.answerLateCalls()
            if let out = try session.pendingOutput() { frames.read(out) }
            precondition(
                session.trackedStreams.isDisjoint(with: peer.closed), "something kept for a stream after it closed")
        } catch {
            frames.read(session.finalOutput(after: error))
            precondition(frames.sawGoAway, "a session the input broke did not send GOAWAY")
            break
        }
        if session.isFinished { break }
    }
    precondition(peer.delivered <= peer.fed, "DATA delivered that the peer never sent")
    return 0
}

/// What the gateway does with a session's events, chosen per stream from the input's first byte.
final class GatewayLikePeer: NGHTTP2SessionDelegate, WriteListener {
    let behaviour: UInt8
    let settings = NGHTTP2Session.Settings(
        maxConcurrentStreams: 8, initialWindowSize: 1 << 16, maxFrameSize: 16 << 10, maxHeaderListSize: 4 << 10,
        connectionWindow: 1 << 20)
    weak var session: NGHTTP2Session?
    var fed = 0
    var delivered = 0
    private(set) var closed: Set<Int32> = []
    private var answered: Set<Int32> = []
    /// Streams whose answer comes a turn later, by which time the stream may be gone.
    private var late: [Int32] = []
    private var completed: Set<Int> = []
    private var nextToken = 0

    init(behaviour: UInt8) { self.behaviour = behaviour }

    private func choice(_ stream: Int32) -> UInt8 { (behaviour &+ UInt8(truncatingIfNeeded: stream)) % 5 }

    private func completion() -> WriteCompletion {
        nextToken += 1
        return .listener(self, token: nextToken)
    }

    func written(_ token: Int) {
        precondition(completed.insert(token).inserted, "a write's completion was told twice")
    }

    /// The backend side: requests as `BackendCalls` and `ProxyCall` open them.
    func openRequests() {
        guard let session else { return }
        let head: HPACKHeaders = [
            ":method": "POST", ":scheme": "http", ":path": "/spark.connect.SparkConnectService/Config",
            ":authority": "engine", "content-type": "application/grpc", "te": "trailers",
        ]
        _ = session.submitRequest(head, endStream: true)
        for _ in 0..<2 {
            let id = session.submitRequest(head, endStream: false)
            guard id > 0 else { continue }
            session.submitData(
                ByteBuffer(bytes: [0, 0, 0, 0, 2, 8, 1]), on: id, endStream: true, completion: completion())
        }
    }

    func session(_ session: NGHTTP2Session, headers: HPACKHeaders, on stream: Int32, endStream: Bool) {
        precondition(!closed.contains(stream), "headers on a stream after it closed")
        let measured = headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 32 }
        precondition(measured <= settings.maxHeaderListSize, "a header block over the limit was delivered")
        guard session.role == .server, answered.insert(stream).inserted else { return }
        switch choice(stream) {
        case 0:
            session.submitResponse(
                [":status": "200", "content-type": "application/grpc"], on: stream, endStream: false)
            if endStream { session.submitTrailers(["grpc-status": "0"], on: stream) }
        case 1:
            // A refusal: trailers-only, then "stop sending" while the client may still be sending.
            session.submitResponse(
                [
                    ":status": "200", "content-type": "application/grpc", "grpc-status": "16",
                    "grpc-message": "no token",
                ],
                on: stream, endStream: true)
            session.submitReset(stream, errorCode: 0)
        case 2: session.submitReset(stream, errorCode: 8)
        default: late.append(stream)
        }
    }

    func session(_ session: NGHTTP2Session, data: ByteBuffer, on stream: Int32, endStream: Bool) {
        precondition(!closed.contains(stream), "DATA on a stream after it closed")
        delivered += data.readableBytes
        session.giveBack(data.readableBytes, on: stream)
        session.giveBack(data.readableBytes, on: 0)
        guard session.role == .server, choice(stream) == 0 || choice(stream) == 4 else { return }
        session.submitData(data, on: stream, endStream: false, completion: completion())
        if endStream { session.submitTrailers(["grpc-status": "0"], on: stream) }
    }

    func session(_ session: NGHTTP2Session, reset stream: Int32, errorCode: UInt32) {}

    func session(_ session: NGHTTP2Session, closed stream: Int32, errorCode: UInt32) {
        closed.insert(stream)
    }

    func session(_ session: NGHTTP2Session, goAway lastStreamID: Int32, errorCode: UInt32) {}

    func sessionPingAcknowledged(_ session: NGHTTP2Session) {}

    /// Answers decided a turn later, whether or not their streams are still there.
    func answerLateCalls() {
        guard let session, !late.isEmpty else { return }
        for stream in late {
            session.submitResponse(
                [":status": "200", "content-type": "application/grpc"], on: stream, endStream: false)
            session.submitData(
                ByteBuffer(bytes: [0, 0, 0, 0, 0]), on: stream, endStream: false, completion: completion())
            if choice(stream) == 3 {
                session.submitTrailers(["grpc-status": "0"], on: stream)
            } else {
                session.submitReset(stream, errorCode: 0)
            }
        }
        late.removeAll()
    }
}

/// Reads what the session wrote as HTTP/2 frames: every byte must belong to a whole frame.
struct FrameChecker {
    var expectsPreface: Bool
    private var pending: [UInt8] = []
    private(set) var sawGoAway = false

    init(expectsPreface: Bool) { self.expectsPreface = expectsPreface }

    mutating func read(_ buffer: ByteBuffer) {
        pending += buffer.readableBytesView
        if expectsPreface {
            let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
            precondition(pending.starts(with: preface), "a client session did not start with the preface")
            pending.removeFirst(preface.count)
            expectsPreface = false
        }
        var at = 0
        while pending.count - at >= 9 {
            let length = Int(pending[at]) << 16 | Int(pending[at + 1]) << 8 | Int(pending[at + 2])
            precondition(pending.count - at >= 9 + length, "a frame cut short within one write")
            if pending[at + 3] == 0x7 { sawGoAway = true }
            at += 9 + length
        }
        precondition(at == pending.count, "bytes after the last whole frame")
        pending.removeAll()
    }
}
