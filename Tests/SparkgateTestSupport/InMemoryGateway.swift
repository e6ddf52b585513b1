import Crypto
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import SparkgateCore
import SparkgateEngines
import SparkgateFraming
import SparkgateObservability
import SparkgateServer
import SparkgateSharedState
import SparkgateTransport

/// A whole gateway in memory: a real HTTP/2 client pipeline, the gateway's own connection pipeline, and
/// scripted HTTP/2 backends, all `EmbeddedChannel`s on one `EmbeddedEventLoop`. `pump()` carries bytes
/// between them until nothing moves, so every test sees the same interleaving.
public final class InMemoryGateway {
    public let loop = EmbeddedEventLoop()
    public let runtime: GatewayRuntime
    public let client: EmbeddedChannel
    public let frontend: EmbeddedChannel
    package let recorder = ClientRecorder()
    package let connector: InMemoryConnector
    public let secret = [UInt8](repeating: 0x5A, count: 32)
    public let directory: String

    /// `clientWindow` is the stream window the client advertises (it never gives window back unless told);
    /// `teams` is the YAML flow mapping of the teams served.
    public init(
        config extra: String = "", teams: String = "{analytics: {}}", backend script: @escaping ScriptedBackend.Script,
        clientWindow: Int = 65_535
    ) async throws {
        directory = NSTemporaryDirectory() + "sparkgate-inmemory-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(secret).write(to: URL(fileURLWithPath: directory + "/hs.secret"))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: directory + "/hs.secret")
        let yaml = """
            insecure_plaintext: true
            listen: "127.0.0.1:0"
            auth:
              issuer: test
              audience: spark-connect
              keys: [{kid: k1, algorithm: HS256, secret_file: hs.secret}]
            backends:
              local: {endpoints: ["127.0.0.1:15002"]}
            defaults:
              backend: local
              quotas: {requests_per_second: 0}
            teams: \(teams)
            audit_log: "off"
            \(extra)
            """
        let config = try SparkgateConfig.parse(yaml: yaml, file: directory + "/sparkgate.yaml")
        let logger = Logger(label: "inmemory")
        let state = try await GatewayGenerationLoader.load(config, environment: [:], logger: logger)
        connector = InMemoryConnector(loop: loop, script: script)
        runtime = GatewayRuntime(
            state: state, group: loop, metrics: GatewayMetrics(version: "test"),
            audit: AuditLog(target: .off, logger: logger), logger: logger,
            connector: connector)

        frontend = EmbeddedChannel(loop: loop)
        try GatewayPipeline.configure(frontend, parts: runtime.connectionParts)
        client = EmbeddedChannel(loop: loop)
        var settings = nioDefaultSettings
        settings.append(HTTP2Setting(parameter: .initialWindowSize, value: clientWindow))
        try client.pipeline.syncOperations.addHandler(NIOHTTP2Handler(mode: .client, initialSettings: settings))
        try client.pipeline.syncOperations.addHandler(recorder)
        try await frontend.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 15443)).get()
        try await client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 15443)).get()
        pump()
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A signed token for a member of `team`.
    public func token(user: String = "alice", team: String = "analytics") -> String {
        let exp = Int(Date().timeIntervalSince1970) + 3600
        return signed(#"{"iss":"test","aud":"spark-connect","sub":"\#(user)","team":"\#(team)","exp":\#(exp)}"#)
    }

    /// A token with these claims (JSON), signed with the gateway's key.
    public func signed(_ claims: String) -> String {
        func b64(_ bytes: some Sequence<UInt8>) -> String { Base64URL.encode(Array(bytes)) }
        let header = b64(#"{"alg":"HS256","kid":"k1","typ":"JWT"}"#.utf8)
        let payload = b64(claims.utf8)
        let mac = HMAC<SHA256>.authenticationCode(
            for: Array("\(header).\(payload)".utf8), using: SymmetricKey(data: secret))
        return "\(header).\(payload).\(b64(mac))"
    }

    /// Bytes carried from the gateway's backend connections to the gateway (what backends got to send).
    public var bytesFromBackends: Int { connector.pairs.reduce(0) { $0 + $1.toGateway } }

    /// Carries bytes both ways on every connection until nothing moves (timers run as they fall due).
    @discardableResult
    public func pump(rounds: Int = 10_000) -> Int {
        var total = 0
        for _ in 0..<rounds {
            var moved = 0
            moved += carry(from: client, to: frontend)
            moved += carry(from: frontend, to: client)
            for pair in connector.pairs {
                moved += carry(from: pair.gateway, to: pair.server)
                let back = carry(from: pair.server, to: pair.gateway)
                pair.toGateway += back
                moved += back
            }
            loop.run()
            total += moved
            if moved == 0 { break }
        }
        return total
    }

    private func carry(from a: EmbeddedChannel, to b: EmbeddedChannel) -> Int {
        var moved = 0
        while let buffer = try? a.readOutbound(as: ByteBuffer.self) {
            moved += buffer.readableBytes
            guard b.isActive else { continue }
            try? b.deliverInbound(buffer)
        }
        return moved
    }

    // MARK: The client side

    public var nextStream = 1

    /// Starts a call: HEADERS for `method`, then the framed `messages` as DATA, the last with END_STREAM
    /// when `end`. Returns the stream id.
    @discardableResult
    public func call(
        _ method: String, token: String? = nil, messages: [[UInt8]], end: Bool = true,
        extraHeaders: [(String, String)] = [], tokenHeader: String? = "authorization"
    ) -> HTTP2StreamID {
        let id = HTTP2StreamID(nextStream)
        nextStream += 2
        var h = HPACKHeaders()
        h.add(name: ":method", value: "POST")
        h.add(name: ":scheme", value: "http")
        h.add(name: ":path", value: "/spark.connect.SparkConnectService/\(method)")
        h.add(name: ":authority", value: "localhost")
        h.add(name: "content-type", value: "application/grpc")
        h.add(name: "te", value: "trailers")
        if let tokenHeader { h.add(name: tokenHeader, value: "Bearer \(token ?? self.token())") }
        for (n, v) in extraHeaders { h.add(name: n, value: v) }
        client.write(
            HTTP2Frame(streamID: id, payload: .headers(.init(headers: h, endStream: messages.isEmpty && end))),
            promise: nil)
        for (i, m) in messages.enumerated() {
            let framed = GRPCMessage.frame(payload: m).framed
            client.write(
                HTTP2Frame(
                    streamID: id,
                    payload: .data(.init(data: .byteBuffer(framed), endStream: end && i == messages.count - 1))),
                promise: nil)
        }
        client.flush()
        return id
    }

    /// Starts a call whose DATA is `raw` as it is (malformed framing included), ending the request.
    @discardableResult
    public func call(_ method: String, raw: ByteBuffer) -> HTTP2StreamID {
        let id = call(method, messages: [], end: false)
        client.writeAndFlush(
            HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(raw), endStream: true))), promise: nil)
        return id
    }

    /// Gives the client's stream (and connection) `bytes` more window, as a reading client does.
    public func read(_ id: HTTP2StreamID, bytes: Int) {
        client.write(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: bytes)), promise: nil)
        client.write(
            HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: bytes)), promise: nil)
        client.flush()
    }

    public func reset(_ id: HTTP2StreamID) {
        client.writeAndFlush(HTTP2Frame(streamID: id, payload: .rstStream(.cancel)), promise: nil)
    }
}

/// Connects the gateway's backend connections to scripted backends in memory.
package final class InMemoryConnector: BackendConnector, @unchecked Sendable {
    package final class Pair {
        package let gateway: EmbeddedChannel
        package let server: EmbeddedChannel
        package let backend: ScriptedBackend
        package var toGateway = 0
        package init(gateway: EmbeddedChannel, server: EmbeddedChannel, backend: ScriptedBackend) {
            self.gateway = gateway
            self.server = server
            self.backend = backend
        }
    }

    package let loop: EmbeddedEventLoop
    package let script: ScriptedBackend.Script
    package var pairs: [Pair] = []
    /// When set, connecting fails with this error.
    package var refuse: (any Error)?

    package init(loop: EmbeddedEventLoop, script: @escaping ScriptedBackend.Script) {
        self.loop = loop
        self.script = script
    }

    package func connect(
        to endpoint: BackendEndpoint, on eventLoop: any EventLoop, timeout: TimeAmount
    ) -> EventLoopFuture<any Channel> {
        if let refuse { return eventLoop.makeFailedFuture(refuse) }
        let gateway = EmbeddedChannel(loop: loop)
        let server = EmbeddedChannel(loop: loop)
        let backend = ScriptedBackend(script: script)
        do {
            try server.pipeline.syncOperations.addHandler(NIOHTTP2Handler(mode: .server))
            try server.pipeline.syncOperations.addHandler(backend)
            try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            try gateway.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 15002)).wait()
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        pairs.append(Pair(gateway: gateway, server: server, backend: backend))
        return eventLoop.makeSucceededFuture(gateway)
    }

    package var backend: ScriptedBackend? { pairs.last?.backend }
}

/// Records what the client receives, per stream.
package final class ClientRecorder: ChannelInboundHandler {
    package typealias InboundIn = HTTP2Frame

    package struct Stream {
        package var headers: [HPACKHeaders] = []
        package var data = ByteBuffer()
        package var reset: HTTP2ErrorCode?
        package var ended = false

        /// The whole gRPC messages received so far.
        package var messages: [[UInt8]] {
            var bytes = Array(data.readableBytesView)[...]
            var out: [[UInt8]] = []
            while bytes.count >= 5 {
                let length =
                    Int(bytes[bytes.startIndex + 1]) << 24 | Int(bytes[bytes.startIndex + 2]) << 16 | Int(
                        bytes[bytes.startIndex + 3]) << 8 | Int(bytes[bytes.startIndex + 4])
                guard bytes.count >= 5 + length else { break }
                out.append(Array(bytes.dropFirst(5).prefix(length)))
                bytes = bytes.dropFirst(5 + length)
            }
            return out
        }

        package var status: String? { headers.last?.first(name: "grpc-status") }
        package var message: String? { headers.last?.first(name: "grpc-message").map(GRPCStatusMessage.decode) }
    }

    package var streams: [HTTP2StreamID: Stream] = [:]
    package var goAway: HTTP2StreamID?
    package var goAwayCode: HTTP2ErrorCode?

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.payload {
        case .headers(let h):
            streams[frame.streamID, default: Stream()].headers.append(h.headers)
            if h.endStream { streams[frame.streamID, default: Stream()].ended = true }
        case .data(let d):
            if case .byteBuffer(var b) = d.data { streams[frame.streamID, default: Stream()].data.writeBuffer(&b) }
            if d.endStream { streams[frame.streamID, default: Stream()].ended = true }
        case .rstStream(let code):
            streams[frame.streamID, default: Stream()].reset = code
        case .goAway(let last, let code, _):
            goAway = last
            goAwayCode = code
        default:
            break
        }
    }
}
