import NIOCore
import SparkgateRESP

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
///
/// Every command has a deadline. Replies come in order, so only the oldest pending command's deadline can
/// pass first: one timer per connection watches it (re-armed as replies arrive), not one per command. A
/// command past its deadline closes the connection, failing everything behind it: a server that does not
/// answer one command answers none.
final class RedisConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var promise: EventLoopPromise<RESPValue>
        var deadline: NIODeadline
    }

    private var pending = CircularBuffer<Pending>()
    private var received: ByteBuffer?
    private let parser = RESPParser()
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        var buffer = context.channel.allocator.buffer(capacity: 64)
        RESPCommand.encode(request.arguments, into: &buffer)
        pending.append(Pending(promise: request.promise, deadline: .now() + timeout))
        armTimer(context)
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
                guard let next = pending.popFirst() else {
                    return fail(context, .protocolViolation("a reply nobody asked for"))
                }
                if case .error(let message) = value {
                    next.promise.fail(RedisError.server(message))
                } else {
                    next.promise.succeed(value)
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
        timer?.cancel()
        timer = nil
        failAll(.connection("the connection to redis closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context, error as? RedisError ?? .connection("\(error)"))
    }

    private func armTimer(_ context: ChannelHandlerContext) {
        guard timer == nil, let oldest = pending.first else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: oldest.deadline) { [self] in
            timer = nil
            guard let head = pending.first else { return }
            if head.deadline <= .now() {
                fail(context, .timeout(milliseconds: Int(timeout.nanoseconds / 1_000_000)))
            } else {
                armTimer(context)
            }
        }
    }

    private func fail(_ context: ChannelHandlerContext, _ error: RedisError) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: RedisError) {
        while let next = pending.popFirst() { next.promise.fail(error) }
    }
}
