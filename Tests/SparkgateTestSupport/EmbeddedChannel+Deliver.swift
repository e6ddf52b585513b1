import NIOCore
import NIOEmbedded

extension EmbeddedChannel {
    /// Bytes into the pipeline as `writeInbound` puts them (a read, then its burst's end), without building the
    /// array of what the channel then holds inbound. Swift 6.3's optimizer frees that array, when unused, right
    /// after allocating it and then fills it: a release test binary crashed each time the channel held frames.
    public func deliverInbound(_ bytes: ByteBuffer) throws {
        pipeline.syncOperations.fireChannelRead(NIOAny(bytes))
        pipeline.syncOperations.fireChannelReadComplete()
        try throwIfErrorCaught()
    }
}
