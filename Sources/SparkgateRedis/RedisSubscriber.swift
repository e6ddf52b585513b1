import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// Listens on one Redis pub/sub channel on a connection of its own, and hands every message to `onMessage`.
/// Reconnects with backoff for as long as it runs; messages published while it was disconnected are lost,
/// which callers must tolerate (they are hints, with the shared records as the truth).
public final class RedisSubscriber: Service, Sendable {
    let client: RedisClient
    let channel: String
    let group: any EventLoopGroup
    let onMessage: @Sendable ([UInt8]) -> Void

    public init(client: RedisClient, channel: String, group: any EventLoopGroup, onMessage: @escaping @Sendable ([UInt8]) -> Void) {
        self.client = client
        self.channel = channel
        self.group = group
        self.onMessage = onMessage
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var backoff = Duration.milliseconds(100)
            while !Task.isCancelled {
                do {
                    let loop = self.group.next()
                    let connection = try await self.client.connect(on: loop).get()
                    let onMessage = self.onMessage
                    try await loop.submit {
                        let pipelining = try connection.pipeline.syncOperations.handler(type: RedisConnectionHandler.self)
                        try connection.pipeline.syncOperations.addHandler(SubscriptionHandler(onMessage: onMessage), position: .before(pipelining))
                    }.get()
                    let confirmed = loop.makePromise(of: RESPValue.self)
                    try await connection.writeAndFlush(RedisRequest(arguments: RESPCommand.arguments(["SUBSCRIBE", self.channel]), promise: confirmed)).get()
                    _ = try await confirmed.futureResult.get()
                    backoff = .milliseconds(100)
                    try await withTaskCancellationHandler {
                        try await connection.closeFuture.get()
                    } onCancel: {
                        connection.close(promise: nil)
                    }
                } catch {
                    self.client.logger.warning("redis subscription lost; resubscribing", metadata: ["redis.channel": "\(self.channel)", "error": "\(error)"])
                }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }
}

/// After SUBSCRIBE, Redis pushes `["message", channel, payload]` arrays that answer no command: the pipelining
/// handler would take them for replies nobody asked for, so this one, in front of it, takes them first.
private final class SubscriptionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let onMessage: @Sendable ([UInt8]) -> Void
    private var received: ByteBuffer?
    private var confirmed = false
    private let parser = RESPParser()

    init(onMessage: @escaping @Sendable ([UInt8]) -> Void) {
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
                if let parts = value.array, parts.count == 3, parts[0].string == "message", case .bulkString(let payload?) = parts[2] {
                    onMessage(payload)
                } else if !confirmed {
                    // The SUBSCRIBE confirmation answers the command sent through the pipelining handler.
                    confirmed = true
                    context.fireChannelRead(wrapInboundOut(before.getSlice(at: before.readerIndex, length: before.readableBytes - buffer.readableBytes)!))
                }
            }
        } catch {
            context.close(promise: nil)
        }
    }
}
