import NIOCore
import NIOHPACK
import NIOHTTP2
import SparkgateCore

/// The write side of one HTTP/2 connection (a client's or a backend's), owned by its connection handler:
/// frames written during a read burst are flushed once at its end, and connection-level window goes back to
/// the peer from `ConnectionCredit`, as the bytes leave the gateway.
package final class FrameWriter {
    package let loop: LoopContext
    private(set) var context: ChannelHandlerContext?
    /// The HTTP/2 handler below `context`, written to directly (see `NGHTTP2ChannelHandler.submit`).
    private var http2: NGHTTP2ChannelHandler?
    private var credit: ConnectionCredit

    package init(loop: LoopContext, credit: ConnectionCredit) {
        self.loop = loop
        self.credit = credit
    }

    package var eventLoop: any EventLoop { loop.eventLoop }
    package var isActive: Bool { context?.channel.isActive ?? false }

    /// `receiver` (the handler that owns this writer) then hears of frames from the HTTP/2 handler directly.
    package func attach(_ context: ChannelHandlerContext, receiver: (any HTTP2FrameReceiver)? = nil) {
        self.context = context
        http2 = try? context.pipeline.syncOperations.handler(type: NGHTTP2ChannelHandler.self)
        http2?.receiver = receiver
    }

    package func detach() {
        http2?.receiver = nil
        context = nil
        http2 = nil
    }

    package func write(_ payload: HTTP2Frame.FramePayload, on streamID: HTTP2StreamID, promise: EventLoopPromise<Void>?)
    {
        write(payload, on: streamID, completion: promise.map { .promise($0) })
    }

    /// DATA whose departure `listener` is told of, with `token`.
    package func write(
        _ payload: HTTP2Frame.FramePayload, on streamID: HTTP2StreamID, listener: any WriteListener, token: Int
    ) {
        write(payload, on: streamID, completion: .listener(listener, token: token))
    }

    private func write(_ payload: HTTP2Frame.FramePayload, on streamID: HTTP2StreamID, completion: WriteCompletion?) {
        guard let context else {
            completion?.complete(.failure(ChannelError.ioOnClosedChannel))
            return
        }
        if let http2 {
            http2.submit(payload, on: streamID, completion: completion)
        } else {
            let promise: EventLoopPromise<Void>?
            switch completion {
            case .promise(let p): promise = p
            case .listener(let listener, let token):
                promise = context.eventLoop.makePromise()
                promise?.futureResult.assumeIsolated().whenComplete { _ in listener.written(token) }
            case nil: promise = nil
            }
            context.write(NIOAny(HTTP2Frame(streamID: streamID, payload: payload)), promise: promise)
        }
        loop.markDirty(self)
    }

    package func flushNow() {
        requestsSinceBurst = 0
        context?.flush()
    }

    /// Whole requests written since the read burst began.
    private var requestsSinceBurst = 0

    /// A whole request was written: the first of a read burst goes out at once, so the backend works on it while
    /// the gateway reads the rest, and then every fourth (a flush per request is a syscall per request).
    package func requestWritten() {
        requestsSinceBurst += 1
        guard requestsSinceBurst == 1 || requestsSinceBurst % 4 == 0 else { return }
        // Flushed now, so the burst's end has nothing to flush here unless something is written meanwhile.
        loop.markClean(self)
        context?.flush()
    }

    // MARK: Connection-level window

    /// The HTTP/2 layer's report of the window the peer has (`NIOHTTP2WindowUpdatedEvent` on the root stream).
    package func windowReported(_ window: Int) {
        credit.reported(window: window)
    }

    /// DATA handed to a call, which holds its window until it releases it.
    package func delivered(_ bytes: Int) {
        credit.delivered(bytes)
    }

    package func released(_ bytes: Int) {
        credit.released(bytes)
        giveBackWindow(force: false)
    }

    /// Raises the peer's connection window; only a raise is sent at once, never a few bytes of batch.
    package func raiseWindow(to target: Int) {
        guard credit.raise(target: target) else { return }
        giveBackWindow(force: true)
    }

    /// Sends the connection-level WINDOW_UPDATE that is due, if any.
    package func giveBackWindow(force: Bool) {
        let increment = credit.take(force: force)
        guard increment > 0 else { return }
        write(.windowUpdate(windowSizeIncrement: increment), on: .rootStream, promise: nil)
    }

    /// End of a read burst: give back window, then flush every connection written to.
    package func readBurstEnded() {
        giveBackWindow(force: false)
        loop.flushDirty()
    }

    package var heldBytes: Int { credit.held }
}

extension HTTP2Frame.FramePayload.Data {
    /// The bytes this frame counts against flow-control windows: the payload, plus the pad-length octet and
    /// the padding when padded (RFC 9113 §6.1).
    package var windowBytes: Int {
        data.readableBytes + (paddingBytes.map { $0 + 1 } ?? 0)
    }
}
