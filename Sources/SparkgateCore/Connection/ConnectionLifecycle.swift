/// The life of one client connection as a value: timeouts, keepalive, age, and the budgets that end a
/// connection whose peer misbehaves. Events in, actions out, time as a parameter.
///
/// A connection must finish its TLS handshake and send a first request head within their timeouts; with no
/// open stream it is closed after the idle timeout; a peer silent for the keepalive interval is pinged and
/// closed if it does not answer; past its maximum age it gets a graceful GOAWAY. Refused tokens and
/// Sparkgate's own refusals are budgeted, so neither signature checks nor stream churn through refusals can
/// be made to cost without bound.
public struct ConnectionLifecycle: Sendable {
    public enum Timer: String, Sendable, CaseIterable {
        case handshake, firstRequest, idle, keepalive, keepaliveAck, maxAge, close
    }

    public enum Event: Sendable, Equatable {
        /// The connection was accepted; `tls` says whether a handshake comes first.
        case accepted(tls: Bool)
        case handshakeCompleted
        /// A request head arrived (a stream opened).
        case requestStarted
        /// A stream closed; `openStreams` are still open.
        case streamClosed(openStreams: Int)
        /// Any frame from the peer: it is alive.
        case frameReceived
        case pingAcknowledged
        case fired(Timer)
        case authenticationFailed
        /// Sparkgate refused a call on this connection.
        case refused
    }

    public enum Action: Sendable, Equatable {
        case schedule(Timer, after: Double)
        case cancel(Timer)
        case sendPing
        /// GOAWAY; `calm` sends ENHANCE_YOUR_CALM instead of NO_ERROR.
        case goAway(LimitEvent, calm: Bool)
        /// Close now; `event` counts the limit that did it, if one did.
        case close(LimitEvent?)
    }

    public let limits: ConnectionLimits
    public private(set) var openStreams = 0
    /// When the last stream closed, while none is open: the idle timer checks it when it fires, so opening
    /// and closing streams never touches a timer.
    private var idleSince: Double?
    private var idleTimerArmed = false
    private var lastActivity = 0.0
    private var awaitingPingAck = false
    private var sawRequest = false
    private var goingAway = false
    private var closed = false
    private var authFailures = 0
    private var refusals: [Double] = []

    public init(limits: ConnectionLimits) {
        self.limits = limits
    }

    public var isClosed: Bool { closed }

    public mutating func handle(_ event: Event, now: Double) -> [Action] {
        guard !closed else { return [] }
        var actions: [Action] = []
        switch event {
        case .accepted(let tls):
            lastActivity = now
            if tls, limits.tlsHandshakeTimeoutSeconds > 0 {
                actions.append(.schedule(.handshake, after: limits.tlsHandshakeTimeoutSeconds))
            }
            if limits.firstRequestTimeoutSeconds > 0 {
                actions.append(.schedule(.firstRequest, after: limits.firstRequestTimeoutSeconds))
            }
            if limits.maxConnectionAgeSeconds > 0 {
                actions.append(.schedule(.maxAge, after: limits.maxConnectionAgeSeconds))
            }
            if limits.keepaliveIntervalSeconds > 0 {
                actions.append(.schedule(.keepalive, after: limits.keepaliveIntervalSeconds))
            }
        case .handshakeCompleted:
            lastActivity = now
            actions.append(.cancel(.handshake))
        case .requestStarted:
            lastActivity = now
            openStreams += 1
            idleSince = nil
            if !sawRequest {
                sawRequest = true
                actions.append(.cancel(.firstRequest))
            }
        case .streamClosed(let open):
            openStreams = open
            guard open == 0 else { break }
            if goingAway {
                // Everything the GOAWAY let finish has finished.
                close(nil, into: &actions)
            } else if limits.idleConnectionTimeoutSeconds > 0 {
                idleSince = now
                if !idleTimerArmed {
                    idleTimerArmed = true
                    actions.append(.schedule(.idle, after: limits.idleConnectionTimeoutSeconds))
                }
            }
        case .frameReceived:
            lastActivity = now
        case .pingAcknowledged:
            lastActivity = now
            if awaitingPingAck {
                awaitingPingAck = false
                actions.append(.cancel(.keepaliveAck))
            }
        case .fired(let timer):
            fired(timer, now: now, into: &actions)
        case .authenticationFailed:
            authFailures += 1
            if authFailures >= limits.maxAuthFailuresPerConnection { goAway(.authFailures, calm: true, into: &actions) }
        case .refused:
            refusals.append(now)
            refusals.removeAll { now - $0 > limits.refusalWindowSeconds }
            if refusals.count >= limits.maxRefusalsPerConnection { goAway(.refusals, calm: true, into: &actions) }
        }
        return actions
    }

    private mutating func fired(_ timer: Timer, now: Double, into actions: inout [Action]) {
        switch timer {
        case .handshake:
            close(.handshakeTimeout, into: &actions)
        case .firstRequest:
            if !sawRequest { close(.firstRequestTimeout, into: &actions) }
        case .idle:
            idleTimerArmed = false
            guard openStreams == 0, let since = idleSince else { break }
            let idle = now - since
            if idle >= limits.idleConnectionTimeoutSeconds {
                goAway(.idleTimeout, calm: false, into: &actions)
            } else {
                // Streams came and went since the timer was set: wait out the rest of the current idle spell.
                idleTimerArmed = true
                actions.append(.schedule(.idle, after: limits.idleConnectionTimeoutSeconds - idle))
            }
        case .keepalive:
            let quiet = now - lastActivity
            if quiet >= limits.keepaliveIntervalSeconds && !awaitingPingAck {
                awaitingPingAck = true
                actions.append(.sendPing)
                actions.append(.schedule(.keepaliveAck, after: limits.keepaliveTimeoutSeconds))
                actions.append(.schedule(.keepalive, after: limits.keepaliveIntervalSeconds))
            } else {
                actions.append(.schedule(.keepalive, after: max(0.001, limits.keepaliveIntervalSeconds - quiet)))
            }
        case .keepaliveAck:
            if awaitingPingAck { close(.keepaliveTimeout, into: &actions) }
        case .maxAge:
            goAway(.connectionAge, calm: false, grace: limits.maxConnectionAgeGraceSeconds, into: &actions)
        case .close:
            close(nil, into: &actions)
        }
    }

    /// GOAWAY, then close once the streams the peer already opened have had `grace` to finish (a peer that
    /// misbehaves gets a second).
    private mutating func goAway(_ reason: LimitEvent, calm: Bool, grace: Double = 1, into actions: inout [Action]) {
        guard !goingAway else { return }
        goingAway = true
        actions.append(.goAway(reason, calm: calm))
        actions.append(.schedule(.close, after: grace))
    }

    private mutating func close(_ reason: LimitEvent?, into actions: inout [Action]) {
        closed = true
        for timer in Timer.allCases { actions.append(.cancel(timer)) }
        actions.append(.close(reason))
    }
}
