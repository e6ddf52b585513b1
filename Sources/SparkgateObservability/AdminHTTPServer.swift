import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// An admin request: method, path, query and the bearer token if any.
public struct AdminRequest: Sendable {
    public var method: String
    public var path: String
    public var query: [String: String]
    public var authorization: String?
    public var body: [UInt8]
}

public struct AdminResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int, contentType: String = "application/json", body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    /// A JSON body, encoded by `JSONEncoder` (sorted keys, one line, a trailing newline).
    public init(status: Int, json value: some Encodable) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data(#"{"error":"the response could not be encoded"}"#.utf8)
        self.init(status: status, body: Array(data) + [UInt8(ascii: "\n")])
    }

    public static func error(_ status: Int, _ message: String) -> AdminResponse {
        AdminResponse(status: status, json: ["error": message])
    }
}

/// The HTTP/1.1 admin listener: `/metrics`, `/healthz`, `/readyz`, `/v1/...`. Routing lives with the
/// caller; this only speaks HTTP.
public final class AdminHTTPServer: Service, Sendable {
    public typealias Handler = @Sendable (AdminRequest) async -> AdminResponse

    let host: String
    let port: Int
    let group: any EventLoopGroup
    let handler: Handler
    let logger: Logger

    public init(host: String, port: Int, group: any EventLoopGroup, logger: Logger, handler: @escaping Handler) {
        self.host = host
        self.port = port
        self.group = group
        self.logger = logger
        self.handler = handler
    }

    public func run() async throws {
        let handler = self.handler
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminConnectionHandler(handler: handler))
                }
            }
            .bind(host: host, port: port)
            .get()
        logger.info("admin endpoint is listening", metadata: ["admin.listen": "\(channel.localAddress.map { "\($0)" } ?? "\(host):\(port)")"])
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            // Stay up while the gateway drains so /healthz and /metrics keep answering; closed last.
            channel.eventLoop.scheduleTask(in: .milliseconds(50)) { channel.close(promise: nil) }
        }
    }
}

private final class AdminConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let handler: AdminHTTPServer.Handler
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(handler: @escaping AdminHTTPServer.Handler) {
        self.handler = handler
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
        case .body(let buffer):
            if body.count + buffer.readableBytes <= 1 << 20 { body += buffer.readableBytesView }
        case .end:
            guard let head else { return }
            self.head = nil
            let parts = head.uri.split(separator: "?", maxSplits: 1)
            var query: [String: String] = [:]
            if parts.count == 2 {
                for pair in parts[1].split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    let key = String(kv[0]).removingPercentEncoding ?? String(kv[0])
                    let value = kv.count == 2 ? (String(kv[1]).removingPercentEncoding ?? String(kv[1])) : ""
                    query[key] = value
                }
            }
            let request = AdminRequest(
                method: head.method.rawValue, path: parts.first.map(String.init) ?? "/", query: query,
                authorization: head.headers.first(name: "authorization"), body: body)
            let keepAlive = head.isKeepAlive
            let version = head.version
            let promise = context.eventLoop.makePromise(of: AdminResponse.self)
            let handler = self.handler
            promise.completeWithTask { await handler(request) }
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            promise.futureResult.whenSuccess { response in
                let context = bound.value
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: response.contentType)
                headers.add(name: "content-length", value: String(response.body.count))
                headers.add(name: "cache-control", value: "no-store")
                if !keepAlive { headers.add(name: "connection", value: "close") }
                context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: response.status), headers: headers))), promise: nil)
                var buffer = context.channel.allocator.buffer(capacity: response.body.count)
                buffer.writeBytes(response.body)
                context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buffer))), promise: nil)
                context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in
                    if !keepAlive { context.close(promise: nil) }
                }
            }
        }
    }
}
