// A synthetic Spark Connect backend for benchmarks only (never used by tests as a stand-in for Spark).
//
// It answers unary RPCs at once and streams pre-built ExecutePlanResponse Arrow batches at memory speed, so a
// benchmark measures the proxy in front of it rather than Spark. The payload of every batch is one shared
// buffer written without copying; each response echoes the request's session id, as Spark does.
//
//   SyntheticSparkConnect --port 16002 [--stats FILE]
//
// Request headers choose the stream: `x-synthetic-bytes` (Arrow bytes per ExecutePlan, default 65536) and
// `x-synthetic-batch` (bytes per batch, default 4 MiB). On SIGUSR1 it writes completed-stream counts to FILE.
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import SparkgateCore

final class Stats: @unchecked Sendable {
    private let lock = NSLock()
    private var completed = 0
    private var unary = 0
    private var bytes = 0
    func add(bytes n: Int) {
        lock.lock()
        completed += 1
        bytes += n
        lock.unlock()
    }
    func addUnary() {
        lock.lock()
        unary += 1
        lock.unlock()
    }
    var json: String {
        lock.lock()
        defer { lock.unlock() }
        return "{\"completed_streams\":\(completed),\"unary_calls\":\(unary),\"arrow_bytes\":\(bytes)}"
    }
}

let stats = Stats()
let batchPayloads = NIOLockedValueBox<[Int: ByteBuffer]>([:])

func payload(_ size: Int) -> ByteBuffer {
    batchPayloads.withLockedValue { cache in
        if let b = cache[size] { return b }
        var b = ByteBufferAllocator().buffer(capacity: size)
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        while b.readableBytes + 8 <= size {
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            b.writeInteger(x)
        }
        b.writeRepeatingByte(0, count: size - b.readableBytes)
        cache[size] = b
        return b
    }
}

final class SyntheticStream: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    var path = ""
    var wantBytes = 65536
    var batchSize = 4 << 20
    var body = ByteBuffer()
    var remaining = 0
    var sessionID = ""
    var sent = 0
    var streaming = false
    var done = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let h):
            path = h.headers.first(name: ":path") ?? ""
            if let b = h.headers.first(name: "x-synthetic-bytes").flatMap(Int.init) { wantBytes = b }
            if let b = h.headers.first(name: "x-synthetic-batch").flatMap(Int.init), b > 0 { batchSize = b }
            if h.endStream { respond(context) }
        case .data(let d):
            if case .byteBuffer(var b) = d.data { body.writeBuffer(&b) }
            if d.endStream { respond(context) }
        default:
            break
        }
    }

    func respond(_ context: ChannelHandlerContext) {
        var method = SparkConnectMethod.other("")
        if let m = SparkConnectMethod(path: path) { method = m }
        if body.readableBytes >= 5 {
            let envelope = body.withUnsafeReadableBytes { raw in
                try? RequestEnvelope.read(UnsafeRawBufferPointer(rebasing: raw[5...]), method: method)
            }
            sessionID = envelope?.sessionID ?? ""
        }
        var head = HPACKHeaders()
        head.add(name: ":status", value: "200")
        head.add(name: "content-type", value: "application/grpc")
        context.write(wrapOutboundOut(.headers(.init(headers: head))), promise: nil)
        if method == .executePlan {
            streaming = true
            remaining = wantBytes
            pump(context)
        } else {
            var m: [UInt8] = []
            WireEncoding.appendString(field: method.responseSessionIDField, sessionID, to: &m)
            if method == .config {
                var pair: [UInt8] = []
                WireEncoding.appendString(field: 1, "spark.sql.shuffle.partitions", to: &pair)
                WireEncoding.appendString(field: 2, "200", to: &pair)
                WireEncoding.appendLengthDelimited(field: 2, pair, to: &m)
            }
            WireEncoding.appendString(field: method == .config ? 4 : 15, "synthetic-server-side-session", to: &m)
            writeMessage(context, m)
            stats.addUnary()
            finish(context)
        }
    }

    func writeMessage(_ context: ChannelHandlerContext, _ bytes: [UInt8]) {
        var buf = context.channel.allocator.buffer(capacity: bytes.count + 5)
        buf.writeInteger(UInt8(0))
        buf.writeInteger(UInt32(bytes.count))
        buf.writeBytes(bytes)
        context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(buf)))), promise: nil)
    }

    /// Writes batches while the stream can take them; resumes on writability.
    func pump(_ context: ChannelHandlerContext) {
        while streaming && context.channel.isWritable {
            if remaining <= 0 {
                var m: [UInt8] = []
                WireEncoding.appendString(field: 1, sessionID, to: &m)
                WireEncoding.appendLengthDelimited(field: 14, [], to: &m)
                writeMessage(context, m)
                streaming = false
                stats.add(bytes: sent)
                finish(context)
                return
            }
            let n = min(batchSize, remaining)
            let data = payload(batchSize).getSlice(at: 0, length: n)!
            // ExecutePlanResponse { session_id = 1; arrow_batch = 2 { row_count = 1; data = 2 } }
            var batchHead: [UInt8] = []
            WireEncoding.appendTag(field: 1, wireType: .varint, to: &batchHead)
            WireEncoding.appendVarint(UInt64(n / 24), to: &batchHead)
            WireEncoding.appendTag(field: 2, wireType: .lengthDelimited, to: &batchHead)
            WireEncoding.appendVarint(UInt64(n), to: &batchHead)
            var m: [UInt8] = []
            WireEncoding.appendString(field: 1, sessionID, to: &m)
            WireEncoding.appendTag(field: 2, wireType: .lengthDelimited, to: &m)
            WireEncoding.appendVarint(UInt64(batchHead.count + n), to: &m)
            m += batchHead
            var head = context.channel.allocator.buffer(capacity: m.count + 5)
            head.writeInteger(UInt8(0))
            head.writeInteger(UInt32(m.count + n))
            head.writeBytes(m)
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(head)))), promise: nil)
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(data)))), promise: nil)
            context.flush()
            remaining -= n
            sent += n
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { pump(context) }
        context.fireChannelWritabilityChanged()
    }

    func finish(_ context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        var trailers = HPACKHeaders()
        trailers.add(name: "grpc-status", value: "0")
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
    }
}

var port = 16002
var statsFile: String?
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    switch a {
    case "--port": port = Int(args.next() ?? "") ?? port
    case "--stats": statsFile = args.next()
    default:
        FileHandle.standardError.write(Data("unknown argument \(a)\n".utf8))
        exit(2)
    }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
var settings = NIOHTTP2Handler.ConnectionConfiguration()
settings.initialSettings = [
    HTTP2Setting(parameter: .maxConcurrentStreams, value: 10000),
    HTTP2Setting(parameter: .initialWindowSize, value: 1 << 20),
    HTTP2Setting(parameter: .maxFrameSize, value: 1 << 20),
]
settings.targetWindowSize = 16 << 20
var streamSettings = NIOHTTP2Handler.StreamConfiguration()
streamSettings.targetWindowSize = 1 << 20
streamSettings.outboundBufferSizeHighWatermark = 1 << 20
streamSettings.outboundBufferSizeLowWatermark = 256 << 10
let connectionConfiguration = settings
let streamConfiguration = streamSettings
let server = try ServerBootstrap(group: group)
    .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                mode: .server, connectionConfiguration: connectionConfiguration,
                streamConfiguration: streamConfiguration
            ) { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(SyntheticStream())
                }
            }
        }
    }
    .bind(host: "127.0.0.1", port: port).wait()
FileHandle.standardError.write(Data("synthetic Spark Connect backend on 127.0.0.1:\(port)\n".utf8))

let report = DispatchSource.makeSignalSource(signal: SIGUSR1, queue: .main)
signal(SIGUSR1, SIG_IGN)
report.setEventHandler {
    if let statsFile { try? stats.json.write(toFile: statsFile, atomically: true, encoding: .utf8) }
}
report.resume()
dispatchMain()
