import CNGHTTP2
import NIOCore
import NIOHPACK
import NIOHTTP2

/// HTTP/2 for one connection on libnghttp2, in the place NIOHTTP2's handler would take in the pipeline: bytes
/// below, `HTTP2Frame`s above, the same user events (`StreamClosedEvent`, `NIOHTTP2WindowUpdatedEvent` for the
/// connection). The frames above are what the gateway's handlers read and write; below, nghttp2 parses,
/// validates and serializes them, keeps every stream's state and the peer's flow-control windows, and holds
/// the line against protocol abuse (rapid resets, CONTINUATION and SETTINGS floods, oversized header blocks).
///
/// Measured against NIOHTTP2 on the same TLS and forwarding (`Benchmarks/MinimalForwarder`): a quarter of the
/// CPU per unary call.
package final class NGHTTP2ChannelHandler: ChannelDuplexHandler, RemovableChannelHandler, NGHTTP2SessionDelegate {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = HTTP2Frame
    package typealias OutboundIn = HTTP2Frame
    package typealias OutboundOut = ByteBuffer

    private let role: NGHTTP2Session.Role
    private let settings: NGHTTP2Session.Settings
    private var session: NGHTTP2Session?
    private var context: ChannelHandlerContext?
    /// Inside `receive` or `pendingOutput`: nghttp2 calls back while it parses or serializes (a stream closed,
    /// a GOAWAY went out), and must not be entered again from those callbacks; flushes wait for its end.
    private var receiving = false
    private var sending = false
    private var flushPending = false
    /// Streams that closed while nghttp2 parsed or serialized, told to the handlers above once the bytes
    /// serialized with them are written: the last stream's end may close the connection (after a GOAWAY),
    /// and what is still unwritten then would be lost.
    private var closures: [StreamClosedEvent] = []
    /// Streams whose response head went out (server) or whose request went out (client).
    private var started: Set<Int32> = []
    /// Client side: the gateway names streams as it opens them; nghttp2 numbers them too, in the same order.
    /// Where the two ever differ, this maps the gateway's id to nghttp2's and back.
    private var renamed: [Int32: Int32] = [:]
    private var renamedBack: [Int32: Int32] = [:]
    private var closed = false
    /// The completions of the output being written, swapped with the session's list (see `flush`).
    private var written: [WriteCompletion] = []
    /// The handler above, called directly (see `HTTP2FrameReceiver`); without one, frames and events go up
    /// the pipeline. Held strongly and cleared when that handler leaves (`FrameWriter.detach`): a weak
    /// reference would put every retain of the receiver on the runtime's slow path.
    package var receiver: (any HTTP2FrameReceiver)?

    package init(role: NGHTTP2Session.Role, settings: NGHTTP2Session.Settings) {
        self.role = role
        self.settings = settings
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        do {
            let session = try NGHTTP2Session(role: role, settings: settings, allocator: context.channel.allocator)
            session.delegate = self
            self.session = session
        } catch {
            context.fireErrorCaught(error)
            context.close(promise: nil)
            return
        }
        // The client preface (or the server's SETTINGS) goes out as soon as the connection is up.
        if context.channel.isActive { flush(context: context) }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        session?.delegate = nil
    }

    package func channelActive(context: ChannelHandlerContext) {
        flush(context: context)
        context.fireChannelActive()
    }

    // MARK: Inbound

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let session, !closed else { return }
        let buffer = unwrapInboundIn(data)
        receiving = true
        do {
            try session.receive(buffer)
            receiving = false
        } catch {
            receiving = false
            // The peer broke the protocol: a GOAWAY saying so goes out, then the connection ends.
            closed = true
            let sent = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(session.finalOutput(after: error)), promise: sent)
            context.fireErrorCaught(error)
            closeAfter(sent.futureResult, context: context)
            return
        }
        if let receiver {
            receiver.connectionWindowReported(session.connectionWindow)
        } else {
            context.fireUserInboundEventTriggered(
                NIOHTTP2WindowUpdatedEvent(
                    streamID: .rootStream, inboundWindowSize: session.connectionWindow, outboundWindowSize: nil))
        }
        if flushPending || !closures.isEmpty { flush(context: context) }
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        // What parsing produced (SETTINGS and PING acknowledgements) goes out with the burst's writes.
        flush(context: context)
        context.fireChannelReadComplete()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        closed = true
        context.fireChannelInactive()
    }

    package func session(_ session: NGHTTP2Session, headers: HPACKHeaders, on stream: Int32, endStream: Bool) {
        fire(HTTP2Frame(streamID: gatewayID(stream), payload: .headers(.init(headers: headers, endStream: endStream))))
    }

    package func session(_ session: NGHTTP2Session, data: ByteBuffer, on stream: Int32, endStream: Bool) {
        fire(
            HTTP2Frame(
                streamID: gatewayID(stream), payload: .data(.init(data: .byteBuffer(data), endStream: endStream))))
    }

    package func session(_ session: NGHTTP2Session, reset stream: Int32, errorCode: UInt32) {
        fire(HTTP2Frame(streamID: gatewayID(stream), payload: .rstStream(HTTP2ErrorCode(networkCode: Int(errorCode)))))
    }

    package func session(_ session: NGHTTP2Session, closed stream: Int32, errorCode: UInt32) {
        started.remove(stream)
        let id = gatewayID(stream)
        if let gateway = renamedBack.removeValue(forKey: stream) { renamed[gateway] = nil }
        closures.append(
            StreamClosedEvent(streamID: id, reason: errorCode == 0 ? nil : HTTP2ErrorCode(networkCode: Int(errorCode))))
    }

    package func session(_ session: NGHTTP2Session, goAway lastStreamID: Int32, errorCode: UInt32) {
        fire(
            HTTP2Frame(
                streamID: .rootStream,
                payload: .goAway(
                    lastStreamID: HTTP2StreamID(Int(lastStreamID)),
                    errorCode: HTTP2ErrorCode(networkCode: Int(errorCode)), opaqueData: nil)))
    }

    package func sessionPingAcknowledged(_ session: NGHTTP2Session) {
        fire(HTTP2Frame(streamID: .rootStream, payload: .ping(HTTP2PingData(withInteger: 0), ack: true)))
    }

    private func fire(_ frame: HTTP2Frame) {
        if let receiver { return receiver.received(frame) }
        context?.fireChannelRead(wrapInboundOut(frame))
    }

    private func gatewayID(_ stream: Int32) -> HTTP2StreamID {
        HTTP2StreamID(Int(renamedBack[stream] ?? stream))
    }

    private func sessionID(_ id: HTTP2StreamID) -> Int32 {
        let stream = Int32(Int(id))
        return renamed[stream] ?? stream
    }

    // MARK: Outbound

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        submit(frame.payload, on: frame.streamID, completion: promise.map { .promise($0) })
    }

    /// A frame from the handler above, handed over directly (`FrameWriter`) rather than through the pipeline:
    /// no frame boxed per write, and a completion that needs no promise.
    package func submit(_ payload: HTTP2Frame.FramePayload, on id: HTTP2StreamID, completion: WriteCompletion?) {
        guard let session, !closed else {
            completion?.complete(.failure(ChannelError.ioOnClosedChannel))
            return
        }
        let stream = sessionID(id)
        switch payload {
        case .headers(let headers):
            let fields = headers.headers
            if role == .client && !started.contains(stream) && stream != 0 {
                let assigned = session.submitRequest(fields, endStream: headers.endStream)
                if assigned > 0 {
                    started.insert(assigned)
                    if assigned != stream {
                        renamed[stream] = assigned
                        renamedBack[assigned] = stream
                    }
                }
            } else if role == .server && !started.contains(stream) {
                guard session.submitResponse(fields, on: stream, endStream: headers.endStream) else {
                    completion?.complete(.failure(ChannelError.ioOnClosedChannel))
                    return
                }
                started.insert(stream)
            } else {
                session.submitTrailers(fields, on: stream)
            }
            completion?.complete(.success(()))
        case .data(let data):
            guard case .byteBuffer(let buffer) = data.data else {
                completion?.complete(.failure(ChannelError.operationUnsupported))
                return
            }
            session.submitData(buffer, on: stream, endStream: data.endStream, completion: completion)
        case .windowUpdate(let increment):
            session.submitWindowUpdate(increment, on: stream)
            completion?.complete(.success(()))
        case .rstStream(let code):
            session.submitReset(stream, errorCode: UInt32(code.networkCode))
            completion?.complete(.success(()))
        case .ping(let data, let ack):
            if !ack { session.submitPing(data.integer) }
            completion?.complete(.success(()))
        case .goAway(let lastStreamID, let code, let opaque):
            let debug = opaque.map { String(buffer: $0) } ?? ""
            session.submitGoAway(
                lastStreamID: Int32(Int(lastStreamID)), errorCode: UInt32(code.networkCode), debug: debug)
            completion?.complete(.success(()))
        default:
            completion?.complete(.success(()))
        }
    }

    package func flush(context: ChannelHandlerContext) {
        flushPending = true
        guard !receiving, !sending, let session else { return }
        flushPending = false
        let output: ByteBuffer?
        sending = true
        do {
            output = try session.pendingOutput()
            sending = false
        } catch {
            sending = false
            context.fireErrorCaught(error)
            context.close(promise: nil)
            return
        }
        session.takeWrittenCompletions(into: &written)
        guard let output else {
            // Moved out before they run: a completion may write and flush again, re-entering here, and must find
            // `written` empty rather than these (which would then be completed twice).
            var completing: [WriteCompletion] = []
            swap(&completing, &written)
            for completion in completing { completion.complete(.success(())) }
            if written.isEmpty {
                completing.removeAll(keepingCapacity: true)
                swap(&completing, &written)
            }
            tellClosures(context: context)
            if flushPending { flush(context: context) }
            return
        }
        // A session that is finished (GOAWAY both ways, nothing open) is left for its owner to close, as
        // NIOHTTP2 leaves it: closing at once would reset a peer still sending its last acknowledgements, and
        // its kernel would discard the answers it had not read yet.
        if written.isEmpty {
            context.write(wrapOutboundOut(output), promise: nil)
        } else {
            let batch = written
            written = []
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.assumeIsolated().whenComplete { result in
                for completion in batch { completion.complete(result) }
            }
            context.write(wrapOutboundOut(output), promise: promise)
        }
        context.flush()
        tellClosures(context: context)
        // Callbacks during serializing asked for another flush (a stream closed and its call wrote).
        if flushPending { return flush(context: context) }
    }

    private func tellClosures(context: ChannelHandlerContext) {
        while !closures.isEmpty {
            let told = closures
            closures.removeAll()
            for event in told {
                if let receiver { receiver.streamClosed(event) } else { context.fireUserInboundEventTriggered(event) }
            }
        }
    }

    /// Closes once the last bytes (a GOAWAY among them) are written: a close with writes still pending
    /// discards them, and the peer would see the connection end with no reason.
    private func closeAfter(_ written: EventLoopFuture<Void>, context: ChannelHandlerContext) {
        let channel = context.channel
        written.whenComplete { _ in channel.close(promise: nil) }
    }
}
