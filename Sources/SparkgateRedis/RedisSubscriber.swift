import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import SparkgateRESP

/// Listens on Redis pub/sub channels on a connection of its own, and hands every message to `onMessage`.
/// Reconnects (backoff from 100 ms to 1 s) for as long as it runs; messages published while it was
/// disconnected are lost, which callers must tolerate (they are hints, with the shared records as the truth).
public final class RedisSubscriber: Service, Sendable {
    public typealias Connect = @Sendable (any EventLoop) -> EventLoopFuture<any Channel>

    let channels: [String]
    let group: any EventLoopGroup
    let logger: Logger
    let connect: Connect
    let onMessage: @Sendable (_ channel: String, _ payload: [UInt8]) -> Void

    /// Subscribes on the connections `connect` makes (the client's master, or a sentinel).
    public init(
        channels: [String], group: any EventLoopGroup, logger: Logger, connect: @escaping Connect,
        onMessage: @escaping @Sendable (_ channel: String, _ payload: [UInt8]) -> Void
    ) {
        self.channels = channels
        self.group = group
        self.logger = logger
        self.connect = connect
        self.onMessage = onMessage
    }

    /// Subscribes on connections to the client's Redis.
    public convenience init(
        client: RedisClient, channels: [String], group: any EventLoopGroup,
        onMessage: @escaping @Sendable (String, [UInt8]) -> Void
    ) {
        self.init(
            channels: channels, group: group, logger: client.logger, connect: { client.connect(on: $0) },
            onMessage: onMessage)
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var backoff = Duration.milliseconds(100)
            while !Task.isCancelled {
                do {
                    let loop = self.group.next()
                    let connection = try await self.connect(loop).get()
                    let onMessage = self.onMessage
                    try await loop.submit {
                        let pipelining = try connection.pipeline.syncOperations.handler(
                            type: RedisConnectionHandler.self)
                        try connection.pipeline.syncOperations.addHandler(
                            SubscriptionHandler(onMessage: onMessage), position: .before(pipelining))
                    }.get()
                    let confirmed = loop.makePromise(of: RESPValue.self)
                    try await connection.writeAndFlush(
                        RedisRequest(
                            arguments: RESPCommand.arguments(["SUBSCRIBE"] + self.channels), promise: confirmed)
                    ).get()
                    _ = try await confirmed.futureResult.get()
                    backoff = .milliseconds(100)
                    try await withTaskCancellationHandler {
                        try await connection.closeFuture.get()
                    } onCancel: {
                        connection.close(promise: nil)
                    }
                } catch {
                    self.logger.warning(
                        "redis subscription lost; resubscribing",
                        metadata: ["redis.channels": "\(self.channels)", "error": "\(error)"])
                }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(1))
            }
        }
    }
}

/// After SUBSCRIBE, Redis pushes `["message", channel, payload]` arrays that answer no command: the pipelining
/// handler would take them for replies nobody asked for, so this one, in front of it, takes them first.
private final class SubscriptionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let onMessage: @Sendable (String, [UInt8]) -> Void
    private var received: ByteBuffer?
    private var confirmed = false
    private let parser = RESPParser()

    init(onMessage: @escaping @Sendable (String, [UInt8]) -> Void) {
        self.onMessage = onMessage
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if received == nil { received = incoming } else { received!.writeBuffer(&incoming) }
        do {
            while var buffer = received {
                let before = buffer
                guard let value = try parser.parse(&buffer) else { break }
                received = buffer.readableBytes == 0 ? nil : buffer
                if let parts = value.array, parts.count == 3, parts[0].string == "message",
                    let channel = parts[1].string,
                    case .bulkString(let payload?) = parts[2]
                {
                    onMessage(channel, payload)
                } else if !confirmed {
                    // The SUBSCRIBE confirmation answers the command sent through the pipelining handler.
                    confirmed = true
                    context.fireChannelRead(
                        wrapInboundOut(
                            before.getSlice(
                                at: before.readerIndex, length: before.readableBytes - buffer.readableBytes)!))
                }
            }
        } catch {
            context.close(promise: nil)
        }
    }
}
