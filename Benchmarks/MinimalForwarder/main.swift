// The floor of Sparkgate's HTTP/2 stack, for benchmarks only: a TLS HTTP/2 forwarder built from exactly the
// pieces Sparkgate uses (NIOSSL with the same TLS settings, libnghttp2 through `NGHTTP2ChannelHandler` with the
// same settings, no stream multiplexer, one pooled h2c backend connection per event loop, one flush per read
// burst) and nothing else: no authentication, no parsing, no accounting, no flow control beyond giving window
// back as frames arrive. Whatever a call costs here, Sparkgate cannot cost less on this stack.
//
//   MinimalForwarder --cert server.crt --key server.key --route 15500=127.0.0.1:15002 [--route ...] [--threads N]
//                    [--stack nghttp2|nio|nghttp2-raw]
//
// `--stack nio` puts swift-nio-http2's handler in nghttp2's place (the stack Sparkgate left); `--stack
// nghttp2-raw` skips the HTTP2Frame adapter and forwards between nghttp2 sessions directly: what the adapter costs.
import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import SparkgateCore
import SparkgateTransport

/// The connections of one event loop written to during a read burst, flushed once at its end.
/// Each lives on one event loop, like everything below (hence `@unchecked Sendable`).
final class Flusher: @unchecked Sendable {
    private var dirty: [ObjectIdentifier: ChannelHandlerContext] = [:]

    func mark(_ context: ChannelHandlerContext) {
        dirty[ObjectIdentifier(context)] = context
    }

    func flush() {
        let contexts = dirty
        dirty.removeAll(keepingCapacity: true)
        for context in contexts.values { context.flush() }
    }
}

/// One backend connection per event loop and backend address.
final class BackendSide: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    var context: ChannelHandlerContext?
    let flusher: Flusher
    private var streams: [HTTP2StreamID: (ClientSide, HTTP2StreamID)] = [:]
    private var nextStreamID = 1

    init(flusher: Flusher) {
        self.flusher = flusher
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        write(.windowUpdate(windowSizeIncrement: HTTP2Tuning.connectionWindow - 65_535), on: .rootStream)
    }

    func open(for client: ClientSide, stream: HTTP2StreamID, headers: HPACKHeaders, endStream: Bool) -> HTTP2StreamID {
        let id = HTTP2StreamID(nextStreamID)
        nextStreamID += 2
        streams[id] = (client, stream)
        write(.headers(.init(headers: headers, endStream: endStream)), on: id)
        return id
    }

    func write(_ payload: HTTP2Frame.FramePayload, on id: HTTP2StreamID) {
        guard let context else { return }
        context.write(NIOAny(HTTP2Frame(streamID: id, payload: payload)), promise: nil)
        flusher.mark(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let (client, stream) = streams[frame.streamID] else { return }
        switch frame.payload {
        case .headers(let headers):
            if headers.endStream { streams.removeValue(forKey: frame.streamID) }
            client.write(.headers(.init(headers: headers.headers, endStream: headers.endStream)), on: stream)
        case .data(let data):
            let bytes = data.data.readableBytes
            if data.endStream { streams.removeValue(forKey: frame.streamID) }
            client.write(.data(.init(data: data.data, endStream: data.endStream)), on: stream)
            // Window back at once, on the stream and the connection: the floor has no flow control of its own.
            if bytes > 0 {
                if !data.endStream { write(.windowUpdate(windowSizeIncrement: bytes), on: frame.streamID) }
                write(.windowUpdate(windowSizeIncrement: bytes), on: .rootStream)
            }
        case .rstStream:
            streams.removeValue(forKey: frame.streamID)
            client.write(.rstStream(.cancel), on: stream)
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flusher.flush()
        context.fireChannelReadComplete()
    }
}

/// A client connection: each stream glued to a stream on this loop's backend connection.
final class ClientSide: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    var context: ChannelHandlerContext?
    let flusher: Flusher
    let backend: BackendSide
    private var streams: [HTTP2StreamID: HTTP2StreamID] = [:]

    init(flusher: Flusher, backend: BackendSide) {
        self.flusher = flusher
        self.backend = backend
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func write(_ payload: HTTP2Frame.FramePayload, on id: HTTP2StreamID) {
        guard let context else { return }
        context.write(NIOAny(HTTP2Frame(streamID: id, payload: payload)), promise: nil)
        flusher.mark(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let id = frame.streamID
        switch frame.payload {
        case .headers(let headers):
            if let stream = streams[id] {
                backend.write(.headers(.init(headers: headers.headers, endStream: headers.endStream)), on: stream)
            } else if id != .rootStream {
                // The backend is h2c: `:scheme` becomes http, in place (pseudo-headers stay first).
                var forwarded = HPACKHeaders()
                for (name, value, indexing) in headers.headers {
                    forwarded.add(name: name, value: name == ":scheme" ? "http" : value, indexing: indexing)
                }
                streams[id] = backend.open(for: self, stream: id, headers: forwarded, endStream: headers.endStream)
            }
        case .data(let data):
            guard let stream = streams[id] else { return }
            let bytes = data.data.readableBytes
            backend.write(.data(.init(data: data.data, endStream: data.endStream)), on: stream)
            if bytes > 0 {
                if !data.endStream { write(.windowUpdate(windowSizeIncrement: bytes), on: id) }
                write(.windowUpdate(windowSizeIncrement: bytes), on: .rootStream)
            }
        case .rstStream:
            if let stream = streams.removeValue(forKey: id) { backend.write(.rstStream(.cancel), on: stream) }
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flusher.flush()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let closed = event as? StreamClosedEvent { streams.removeValue(forKey: closed.streamID) }
        context.fireUserInboundEventTriggered(event)
    }
}

// MARK: swift-nio-http2 in libnghttp2's place (--stack nio), with the settings Sparkgate used on it.

enum NIOStack {
    static func settings(maxConcurrentStreams: Int, maxHeaderListBytes: Int) -> HTTP2Settings {
        [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: maxConcurrentStreams),
            HTTP2Setting(parameter: .initialWindowSize, value: HTTP2Tuning.streamWindow),
            HTTP2Setting(parameter: .maxFrameSize, value: HTTP2Tuning.maxFrameSize),
            HTTP2Setting(parameter: .maxHeaderListSize, value: maxHeaderListBytes),
        ]
    }

    static func frontendHandler(_ limits: ConnectionLimits) -> NIOHTTP2Handler {
        var c = NIOHTTP2Handler.ConnectionConfiguration()
        c.initialSettings = settings(
            maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListBytes: limits.maxHeaderListBytes)
        return NIOHTTP2Handler(
            mode: .server, frameDelegate: nil, connectionConfiguration: c, streamConfiguration: .init())
    }

    static func backendHandler() -> NIOHTTP2Handler {
        var c = NIOHTTP2Handler.ConnectionConfiguration()
        c.initialSettings = settings(maxConcurrentStreams: 4096, maxHeaderListBytes: 1 << 20)
        c.headerBlockValidation = .disabled
        return NIOHTTP2Handler(
            mode: .client, frameDelegate: nil, connectionConfiguration: c, streamConfiguration: .init())
    }
}

// MARK: The lower bound (--stack nghttp2-raw): NIOSSL, then bytes straight into nghttp2 sessions, no frames between.

/// One h2c backend connection per event loop and route, on an nghttp2 client session.
final class NGBackendSide: ChannelInboundHandler, NGHTTP2SessionDelegate, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    var context: ChannelHandlerContext?
    let flusher: NGFlusher
    var session: NGHTTP2Session!
    private var streams: [Int32: (NGClientSide, Int32)] = [:]

    init(flusher: NGFlusher) {
        self.flusher = flusher
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        session = try! NGHTTP2Session(
            role: .client, settings: ngSettings(concurrent: 4096), allocator: context.channel.allocator)
        session.delegate = self
        flusher.mark(self)
    }

    func open(for client: NGClientSide, stream: Int32, headers: HPACKHeaders, endStream: Bool) -> Int32 {
        let id = session.submitRequest(headers, endStream: endStream)
        streams[id] = (client, stream)
        flusher.mark(self)
        return id
    }

    func flushOutput() {
        guard let context, let out = try? session.pendingOutput() else { return }
        context.writeAndFlush(NIOAny(out), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        try? session.receive(unwrapInboundIn(data))
        flusher.mark(self)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flusher.flush()
        context.fireChannelReadComplete()
    }

    func session(_ session: NGHTTP2Session, headers: HPACKHeaders, on stream: Int32, endStream: Bool) {
        guard let (client, id) = streams[stream] else { return }
        client.respond(headers, on: id, endStream: endStream)
    }

    func session(_ session: NGHTTP2Session, data: ByteBuffer, on stream: Int32, endStream: Bool) {
        guard let (client, id) = streams[stream] else { return }
        client.session.submitData(data, on: id, endStream: endStream)
        client.markDirty()
        session.giveBack(data.readableBytes, on: stream)
        session.giveBack(data.readableBytes, on: 0)
    }

    func session(_ session: NGHTTP2Session, closed stream: Int32, errorCode: UInt32) {
        guard let (client, id) = streams.removeValue(forKey: stream) else { return }
        if errorCode != 0 {
            client.session.submitReset(id, errorCode: 8)
            client.markDirty()
        }
    }

    func session(_ session: NGHTTP2Session, reset stream: Int32, errorCode: UInt32) {}
    func session(_ session: NGHTTP2Session, goAway lastStreamID: Int32, errorCode: UInt32) {}
    func sessionPingAcknowledged(_ session: NGHTTP2Session) {}
}

/// A client connection on an nghttp2 server session, each stream glued to a backend stream.
final class NGClientSide: ChannelInboundHandler, NGHTTP2SessionDelegate, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    var context: ChannelHandlerContext?
    let flusher: NGFlusher
    let backend: NGBackendSide
    var session: NGHTTP2Session!
    private var streams: [Int32: Int32] = [:]
    /// Response heads wait for the backend's trailers when the backend answered trailers-only.
    private var responded: Set<Int32> = []

    init(flusher: NGFlusher, backend: NGBackendSide) {
        self.flusher = flusher
        self.backend = backend
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        session = try! NGHTTP2Session(
            role: .server, settings: ngSettings(concurrent: 256), allocator: context.channel.allocator)
        session.delegate = self
        flusher.mark(self)
    }

    func markDirty() { flusher.mark(self) }

    func flushOutput() {
        guard let context, let out = try? session.pendingOutput() else { return }
        context.writeAndFlush(NIOAny(out), promise: nil)
    }

    func respond(_ headers: HPACKHeaders, on id: Int32, endStream: Bool) {
        if responded.contains(id) {
            session.submitTrailers(headers, on: id)
        } else {
            responded.insert(id)
            session.submitResponse(headers, on: id, endStream: endStream)
        }
        flusher.mark(self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        try? session.receive(unwrapInboundIn(data))
        flusher.mark(self)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flusher.flush()
        context.fireChannelReadComplete()
    }

    func session(_ session: NGHTTP2Session, headers: HPACKHeaders, on stream: Int32, endStream: Bool) {
        if let id = streams[stream] {
            backend.session.submitTrailers(headers, on: id)
        } else {
            // :scheme in place: pseudo-headers stay ahead of the others.
            var forwarded = HPACKHeaders()
            forwarded.reserveCapacity(headers.count)
            for (name, value, indexing) in headers {
                forwarded.add(name: name, value: name == ":scheme" ? "http" : value, indexing: indexing)
            }
            streams[stream] = backend.open(for: self, stream: stream, headers: forwarded, endStream: endStream)
        }
        flusher.mark(backend)
    }

    func session(_ session: NGHTTP2Session, data: ByteBuffer, on stream: Int32, endStream: Bool) {
        guard let id = streams[stream] else { return }
        backend.session.submitData(data, on: id, endStream: endStream)
        flusher.mark(backend)
        session.giveBack(data.readableBytes, on: stream)
        session.giveBack(data.readableBytes, on: 0)
    }

    func session(_ session: NGHTTP2Session, closed stream: Int32, errorCode: UInt32) {
        streams.removeValue(forKey: stream)
        responded.remove(stream)
    }

    func session(_ session: NGHTTP2Session, reset stream: Int32, errorCode: UInt32) {}
    func session(_ session: NGHTTP2Session, goAway lastStreamID: Int32, errorCode: UInt32) {}
    func sessionPingAcknowledged(_ session: NGHTTP2Session) {}
}

func ngSettings(concurrent: Int) -> NGHTTP2Session.Settings {
    NGHTTP2Session.Settings(
        maxConcurrentStreams: concurrent, initialWindowSize: HTTP2Tuning.streamWindow,
        maxFrameSize: HTTP2Tuning.maxFrameSize,
        maxHeaderListSize: 256 << 10, connectionWindow: HTTP2Tuning.connectionWindow)
}

/// The nghttp2 sessions of one event loop with output due, written once per read burst.
final class NGFlusher: @unchecked Sendable {
    private var dirty: [ObjectIdentifier: () -> Void] = [:]

    func mark(_ side: NGClientSide) { dirty[ObjectIdentifier(side)] = { side.flushOutput() } }
    func mark(_ side: NGBackendSide) { dirty[ObjectIdentifier(side)] = { side.flushOutput() } }

    func flush() {
        var rounds = 0
        while !dirty.isEmpty && rounds < 4 {
            rounds += 1
            let due = dirty
            dirty.removeAll(keepingCapacity: true)
            for write in due.values { write() }
        }
    }
}

/// What one event loop owns: its flusher and its backend connection per route.
final class LoopState: @unchecked Sendable {
    let flusher = Flusher()
    let ngFlusher = NGFlusher()
    var backends: [Int: EventLoopFuture<BackendSide>] = [:]
    var ngBackends: [Int: EventLoopFuture<NGBackendSide>] = [:]

    func ngBackend(_ address: HostPort, route: Int, on loop: any EventLoop) -> EventLoopFuture<NGBackendSide> {
        if let existing = ngBackends[route] { return existing }
        let flusher = ngFlusher
        let future = ClientBootstrap(group: loop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connect(host: address.host, port: address.port)
            .flatMapThrowing { channel -> NGBackendSide in
                let side = NGBackendSide(flusher: flusher)
                try channel.pipeline.syncOperations.addHandler(side)
                side.flushOutput()
                return side
            }
        ngBackends[route] = future
        return future
    }

    func backend(_ address: HostPort, route: Int, on loop: any EventLoop) -> EventLoopFuture<BackendSide> {
        if let existing = backends[route] { return existing }
        let flusher = self.flusher
        let future = ClientBootstrap(group: loop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connect(host: address.host, port: address.port)
            .flatMapThrowing { channel -> BackendSide in
                let side = BackendSide(flusher: flusher)
                try channel.pipeline.syncOperations.addHandler(
                    stack == "nio" ? NIOStack.backendHandler() : HTTP2Tuning.backendHandler())
                try channel.pipeline.syncOperations.addHandler(side)
                return side
            }
        backends[route] = future
        return future
    }
}

nonisolated(unsafe) var cert = ""
nonisolated(unsafe) var key = ""
nonisolated(unsafe) var routes: [(port: Int, backend: HostPort)] = []
nonisolated(unsafe) var threads = System.coreCount
nonisolated(unsafe) var stack = "nghttp2"
nonisolated(unsafe) var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    switch a {
    case "--cert": cert = args.next() ?? ""
    case "--key": key = args.next() ?? ""
    case "--threads": threads = Int(args.next() ?? "") ?? threads
    case "--stack": stack = args.next() ?? stack
    case "--route":
        let parts = (args.next() ?? "").split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let port = Int(parts[0]), let backend = HostPort(parsing: parts[1]) else {
            FileHandle.standardError.write(Data("--route takes PORT=HOST:PORT\n".utf8))
            exit(2)
        }
        routes.append((port, backend))
    default:
        FileHandle.standardError.write(Data("unknown argument \(a)\n".utf8))
        exit(2)
    }
}

// The same TLS settings as Sparkgate's listener (GatewayGenerationLoader).
let chain = try NIOSSLCertificate.fromPEMFile(cert)
var tls = TLSConfiguration.makeServerConfiguration(
    certificateChain: chain.map { .certificate($0) },
    privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
tls.minimumTLSVersion = .tlsv12
tls.applicationProtocols = ["h2"]
tls.certificateVerification = .none
let sslContext = try NIOSSLContext(configuration: tls)
let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let loops = Dictionary(uniqueKeysWithValues: group.makeIterator().map { (ObjectIdentifier($0), LoopState()) })
let limits = ConnectionLimits()
for (index, route) in routes.enumerated() {
    let (index, backendAddress) = (index, route.backend)
    _ = try ServerBootstrap(group: group)
        .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in
            // The loop's backend connection first (once per loop), then the client's handlers.
            let state = loops[ObjectIdentifier(channel.eventLoop)]!
            if stack == "nghttp2-raw" {
                return state.ngBackend(backendAddress, route: index, on: channel.eventLoop).flatMapThrowing { backend in
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLServerHandler(context: sslContext))
                    try sync.addHandler(NGClientSide(flusher: state.ngFlusher, backend: backend))
                }
            }
            return state.backend(backendAddress, route: index, on: channel.eventLoop).flatMapThrowing { backend in
                let sync = channel.pipeline.syncOperations
                try sync.addHandler(NIOSSLServerHandler(context: sslContext))
                if stack == "nio" {
                    try sync.addHandler(NIOStack.frontendHandler(limits))
                } else {
                    try sync.addHandler(HTTP2Tuning.frontendHandler(limits))
                }
                try sync.addHandler(ClientSide(flusher: state.flusher, backend: backend))
            }
        }
        .bind(host: "127.0.0.1", port: route.port).wait()
    FileHandle.standardError.write(Data("minimal forwarder on 127.0.0.1:\(route.port) to \(route.backend)\n".utf8))
}
dispatchMain()
