// The floor of Sparkgate's HTTP/2 stack, for benchmarks only: a TLS HTTP/2 forwarder built from exactly the
// pieces Sparkgate uses (NIOSSL with the same TLS settings, NIOHTTP2's handler with the same settings and no
// stream multiplexer, one pooled h2c backend connection per event loop, one flush per read burst) and
// nothing else: no authentication, no parsing, no accounting, no flow control beyond giving window back as
// frames arrive. Whatever a call costs here, Sparkgate cannot cost less on this stack.
//
//   MinimalForwarder --cert server.crt --key server.key --route 15500=127.0.0.1:15002 [--route ...] [--threads N]
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
                var forwarded = headers.headers
                forwarded.replaceOrAdd(name: ":scheme", value: "http")
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

/// What one event loop owns: its flusher and its backend connection per route.
final class LoopState: @unchecked Sendable {
    let flusher = Flusher()
    var backends: [Int: EventLoopFuture<BackendSide>] = [:]

    func backend(_ address: HostPort, route: Int, on loop: any EventLoop) -> EventLoopFuture<BackendSide> {
        if let existing = backends[route] { return existing }
        let flusher = self.flusher
        let future = ClientBootstrap(group: loop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connect(host: address.host, port: address.port)
            .flatMapThrowing { channel -> BackendSide in
                let side = BackendSide(flusher: flusher)
                try channel.pipeline.syncOperations.addHandler(HTTP2Tuning.backendHandler())
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
nonisolated(unsafe) var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    switch a {
    case "--cert": cert = args.next() ?? ""
    case "--key": key = args.next() ?? ""
    case "--threads": threads = Int(args.next() ?? "") ?? threads
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

// The same TLS settings as Sparkgate's listener (GatewayStateLoader).
let chain = try NIOSSLCertificate.fromPEMFile(cert)
var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
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
            return state.backend(backendAddress, route: index, on: channel.eventLoop).flatMapThrowing { backend in
                let sync = channel.pipeline.syncOperations
                try sync.addHandler(NIOSSLServerHandler(context: sslContext))
                try sync.addHandler(HTTP2Tuning.frontendHandler(limits))
                try sync.addHandler(ClientSide(flusher: state.flusher, backend: backend))
            }
        }
        .bind(host: "127.0.0.1", port: route.port).wait()
    FileHandle.standardError.write(Data("minimal forwarder on 127.0.0.1:\(route.port) to \(route.backend)\n".utf8))
}
dispatchMain()
