/// The connection-level receive window of one HTTP/2 connection.
///
/// Window goes back to the peer as its bytes leave the gateway, not as they arrive: the peer's window is
/// kept at `target` minus what calls still hold. It is decided from the window the HTTP/2 layer reports
/// (`reported`), so DATA the layer drops without delivering (frames on a stream just reset) is given back
/// too, and a connection never starves from refusals.
public struct ConnectionCredit: Sendable, Equatable {
    /// The window the peer should have when nothing is held.
    public private(set) var target: Int
    /// The peer's window as last reported, plus what was given back since.
    public private(set) var window: Int
    /// Bytes delivered to calls that they have not released yet.
    public private(set) var held = 0
    /// WINDOW_UPDATE frames carry at least this much, unless forced.
    public let batch: Int

    /// `window` is the protocol's initial 65,535 bytes until SETTINGS say otherwise.
    public init(target: Int, window: Int = 65_535, batch: Int = 16 << 10) {
        self.target = target
        self.window = window
        self.batch = batch
    }

    /// The HTTP/2 layer reported the window the peer has now.
    public mutating func reported(window: Int) {
        self.window = window
    }

    public mutating func delivered(_ bytes: Int) {
        held += bytes
    }

    public mutating func released(_ bytes: Int) {
        held = max(0, held - bytes)
    }

    /// Raises (never lowers) the window the peer gets; true when it grew.
    @discardableResult
    public mutating func raise(target: Int) -> Bool {
        guard target > self.target else { return false }
        self.target = target
        return true
    }

    /// The increment to send now, if any.
    public mutating func take(force: Bool = false) -> Int {
        let wanted = target - held - window
        guard wanted > 0, force || wanted >= batch else { return 0 }
        window += wanted
        return wanted
    }
}
