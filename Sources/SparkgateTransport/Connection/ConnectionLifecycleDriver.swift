import NIOCore
import SparkgateCore
import SparkgateObservability

/// What a connection's lifecycle asks of the HTTP/2 layer, once there is one.
package protocol LifecycleOwner: AnyObject {
    func sendPing()
    func sendGoAway(_ reason: LimitEvent, calm: Bool)
}

/// Carries out a `ConnectionLifecycle`'s actions on one connection: its timers on the event loop, PING and
/// GOAWAY through the HTTP/2 layer (once the connection has one), closing, and counting each limit that
/// ends a connection. Touched only on the connection's event loop.
package final class ConnectionLifecycleDriver {
    private var machine: ConnectionLifecycle
    private var timers: [ConnectionLifecycle.Timer: Scheduled<Void>] = [:]
    private let channel: any Channel
    private let metrics: GatewayMetrics
    /// Counted instead of `keepalive_timeout` (a backend connection counts `backend_keepalive_timeout`).
    private let keepaliveEvent: LimitEvent
    /// The HTTP/2 layer, once the connection has one. A strong reference, dropped in `stop()`: a weak one
    /// would put every retain of the connection handler on the runtime's slow path.
    package var owner: (any LifecycleOwner)?

    package init(
        channel: any Channel, limits: ConnectionLimits, metrics: GatewayMetrics,
        keepaliveEvent: LimitEvent = .keepaliveTimeout
    ) {
        self.channel = channel
        self.machine = ConnectionLifecycle(limits: limits)
        self.metrics = metrics
        self.keepaliveEvent = keepaliveEvent
    }

    package var openStreams: Int { machine.openStreams }

    package func handle(_ event: ConnectionLifecycle.Event) {
        for action in machine.handle(event, now: WallClock.now()) {
            switch action {
            case .schedule(let timer, let seconds):
                timers[timer]?.cancel()
                timers[timer] = channel.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(seconds * 1e9)))
                { [self] in
                    timers[timer] = nil
                    handle(.fired(timer))
                }
            case .cancel(let timer):
                timers.removeValue(forKey: timer)?.cancel()
            case .sendPing:
                owner?.sendPing()
            case .goAway(let reason, let calm):
                metrics.limitEvent(reason)
                if let owner { owner.sendGoAway(reason, calm: calm) } else { channel.close(promise: nil) }
            case .close(let reason):
                if let reason { metrics.limitEvent(reason == .keepaliveTimeout ? keepaliveEvent : reason) }
                channel.close(promise: nil)
            }
        }
    }

    /// The connection closed on its own: stop every timer.
    package func stop() {
        for timer in timers.values { timer.cancel() }
        timers.removeAll()
        owner = nil
    }
}
