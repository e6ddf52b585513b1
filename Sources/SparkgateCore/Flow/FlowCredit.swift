/// HTTP/2 flow-control credit for one direction of one proxied stream.
///
/// Sparkgate returns window (WINDOW_UPDATE) to the sending peer only while the receiving peer keeps up:
/// bytes written toward the receiver and not yet flushed out count as `outstanding`, and past the high
/// watermark credit is held back until they drain below the low one. The sender can therefore never have
/// more than its stream window plus the high watermark in flight, however fast it is; that is the whole of
/// Sparkgate's buffering per stream, apart from one message being reassembled.
public struct FlowCredit: Sendable, Equatable {
    /// Bytes received from the sender and not yet returned as window.
    public private(set) var unacknowledged = 0
    /// Bytes written toward the receiver that have not left the gateway yet.
    public private(set) var outstanding = 0
    public private(set) var highWatermark: Int
    public private(set) var lowWatermark: Int
    /// Window is returned in chunks of at least this many bytes, to keep WINDOW_UPDATE frames few.
    public let batch: Int
    private var held = false

    public init(highWatermark: Int = 1 << 20, lowWatermark: Int = 256 << 10, batch: Int = 64 << 10) {
        self.highWatermark = highWatermark
        self.lowWatermark = lowWatermark
        self.batch = batch
    }

    public mutating func received(_ bytes: Int) {
        unacknowledged += bytes
    }

    public mutating func wrote(_ bytes: Int) {
        outstanding += bytes
        if outstanding > highWatermark { held = true }
    }

    /// Makes room for messages of `bytes`: one can drain toward the receiver while the next one arrives,
    /// so a producer and a consumer of large messages (Spark's Arrow batches are ~4 MiB) overlap instead of
    /// taking turns. Bounded by `ceiling`.
    public mutating func accommodate(messageBytes bytes: Int, ceiling: Int) {
        let wanted = min(ceiling, 2 * bytes)
        guard wanted > highWatermark else { return }
        highWatermark = wanted
        lowWatermark = wanted / 4
    }

    public mutating func flushed(_ bytes: Int) {
        outstanding = max(0, outstanding - bytes)
        if held && outstanding <= lowWatermark { held = false }
    }

    /// Whether credit is being held back because the receiver is slow.
    public var isHeld: Bool { held }

    /// The window to return now: nothing while held, otherwise what has accumulated once it reaches a batch
    /// (or all of it when `force`, e.g. the moment the hold is released), at most `limit`.
    public mutating func take(force: Bool = false, limit: Int = .max) -> Int {
        guard !held, unacknowledged > 0, limit > 0, force || unacknowledged >= batch else { return 0 }
        let bytes = min(unacknowledged, limit)
        unacknowledged -= bytes
        return bytes
    }
}
