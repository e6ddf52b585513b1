/// A session placement to record where every replica reads it.
public struct PlacementRecord: Sendable, Equatable {
    public var session: SessionKey
    public var change: SessionRouting.PlacementChange
    /// The team's idle timeout: the record lives as long as the session.
    public var sessionIdleSeconds: Double

    public init(session: SessionKey, change: SessionRouting.PlacementChange, sessionIdleSeconds: Double) {
        self.session = session
        self.change = change
        self.sessionIdleSeconds = sessionIdleSeconds
    }
}
