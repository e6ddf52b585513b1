import NIOCore

/// A command on its way: its arguments and the promise its reply completes.
public struct RedisRequest: Sendable {
    public var arguments: [[UInt8]]
    public var promise: EventLoopPromise<RESPValue>

    public init(arguments: [[UInt8]], promise: EventLoopPromise<RESPValue>) {
        self.arguments = arguments
        self.promise = promise
    }
}

/// Pipelines commands on one connection: replies come back in the order commands went out, so each completes
/// the oldest pending promise. Error replies complete it with `RedisError.server`; a lost connection fails
/// every command still pending.
final class RedisConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private var pending = CircularBuffer<EventLoopPromise<RESPValue>>()
    private var received: ByteBuffer?
    private let parser = RESPParser()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        var buffer = context.channel.allocator.buffer(capacity: 64)
        RESPCommand.encode(request.arguments, into: &buffer)
        pending.append(request.promise)
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if received == nil {
            received = incoming
        } else {
            received!.writeBuffer(&incoming)
        }
        do {
            while var buffer = received, let value = try parser.parse(&buffer) {
                received = buffer.readableBytes == 0 ? nil : buffer
                guard let promise = pending.popFirst() else {
                    return fail(context, .protocolViolation("a reply nobody asked for"))
                }
                if case .error(let message) = value {
                    promise.fail(RedisError.server(message))
                } else {
                    promise.succeed(value)
                }
                if received == nil { break }
            }
            if var buffer = received, buffer.readerIndex > 4096 {
                buffer.discardReadBytes()
                received = buffer
            }
        } catch {
            fail(context, error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(.connection("the connection to redis closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context, error as? RedisError ?? .connection("\(error)"))
    }

    private func fail(_ context: ChannelHandlerContext, _ error: RedisError) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: RedisError) {
        while let promise = pending.popFirst() { promise.fail(error) }
    }
}
