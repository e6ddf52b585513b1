import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SparkgateCore
import Synchronization

/// An admin request as it arrived: method, raw target, the bearer token if any, and the body. Nothing in it
/// is parsed before the caller has checked the token (`AdminURI.parse` does that part, after).
public struct AdminRequest: Sendable {
    public var method: String
    /// The request target as sent (`/v1/sessions?team=a`).
    public var uri: String
    public var authorization: String?
    public var body: [UInt8]

    public init(method: String, uri: String, authorization: String?, body: [UInt8]) {
        self.method = method
        self.uri = uri
        self.authorization = authorization
        self.body = body
    }

    /// The path without its query, for routing before authentication (`/healthz` needs no token).
    public var path: String {
        String(uri.utf8.prefix { $0 != UInt8(ascii: "?") }) ?? uri
    }
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
    /// Connections held at once (`admin.max_connections`); more are closed at accept.
    let maxConnections: Int
    private let open = Atomic<Int>(0)

    public init(
        host: String, port: Int, group: any EventLoopGroup, logger: Logger, maxConnections: Int = 64,
        handler: @escaping Handler
    ) {
        self.host = host
        self.port = port
        self.group = group
        self.logger = logger
        self.maxConnections = maxConnections
        self.handler = handler
    }

    public func run() async throws {
        let handler = self.handler
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            // A client that half-closes after its request still gets the answer (NIOHTTP1 closes after it).
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { [self] channel in
                // A local process that opens connections without end gets them closed, not the gateway's memory.
                guard open.wrappingAdd(1, ordering: .relaxed).newValue <= maxConnections else {
                    open.wrappingSubtract(1, ordering: .relaxed)
                    return channel.close()
                }
                channel.closeFuture.whenComplete { [self] _ in open.wrappingSubtract(1, ordering: .relaxed) }
                return channel.eventLoop.makeCompletedFuture {
                    // A peer that stops sending is closed after 30 s: the admin port must not collect idle sockets.
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: .seconds(30)))
                    try channel.pipeline.syncOperations.addHandler(CloseOnIdle())
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminConnectionHandler(handler: handler))
                }
            }
        let channel = try await bootstrap.bind(HostPort(host: host, port: port), key: "admin.listen")
        logger.info(
            "admin endpoint is listening",
            metadata: ["admin.listen": "\(channel.localAddress.map { "\($0)" } ?? "\(host):\(port)")"])
        try await withGracefulShutdownHandler {
            try await channel.closedOrCancelled()
        } onGracefulShutdown: {
            // Stay up while the gateway drains so /healthz and /metrics keep answering; closed last.
            channel.eventLoop.scheduleTask(in: .milliseconds(50)) { channel.close(promise: nil) }
        }
    }
}

package final class AdminConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias OutboundOut = HTTPServerResponsePart

    /// The largest request body the admin API reads; a larger one is refused with 413.
    static let maxBodyBytes = 1 << 20

    let handler: AdminHTTPServer.Handler
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    package init(handler: @escaping AdminHTTPServer.Handler) {
        self.handler = handler
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
            tooLarge = false
        case .body(let buffer):
            guard !tooLarge else { return }
            if body.count + buffer.readableBytes > Self.maxBodyBytes {
                tooLarge = true
                body = []
            } else {
                body += buffer.readableBytesView
            }
        case .end:
            guard let head else { return }
            self.head = nil
            if tooLarge {
                return respond(
                    context, head: head,
                    AdminResponse.error(413, "the request body is over \(Self.maxBodyBytes) bytes"), keepAlive: false)
            }
            let request = AdminRequest(
                method: head.method.rawValue, uri: head.uri, authorization: head.headers.first(name: "authorization"),
                body: body)
            let keepAlive = head.isKeepAlive
            let promise = context.eventLoop.makePromise(of: AdminResponse.self)
            let handler = self.handler
            promise.completeWithTask { await handler(request) }
            promise.futureResult.assumeIsolated().whenSuccess { [self] response in
                respond(context, head: head, response, keepAlive: keepAlive)
            }
        }
    }

    private func respond(
        _ context: ChannelHandlerContext, head: HTTPRequestHead, _ response: AdminResponse, keepAlive: Bool
    ) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: response.contentType)
        headers.add(name: "content-length", value: String(response.body.count))
        headers.add(name: "cache-control", value: "no-store")
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(
            wrapOutboundOut(
                .head(
                    HTTPResponseHead(
                        version: head.version, status: HTTPResponseStatus(statusCode: response.status), headers: headers
                    ))), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: response.body.count)
        buffer.writeBytes(response.body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // NIOHTTP1's protocol error handler (configureHTTPServerPipeline) has already answered 400 to a request
        // it could not parse; writing a second response here would trip its state checks.
        context.close(promise: nil)
    }
}

private final class CloseOnIdle: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
