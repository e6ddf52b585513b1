import SparkgateCore
import Testing

@Suite("Connection lifecycle")
struct ConnectionLifecycleTests {
    typealias L = ConnectionLifecycle

    var limits: ConnectionLimits {
        var l = ConnectionLimits()
        l.tlsHandshakeTimeoutSeconds = 10
        l.firstRequestTimeoutSeconds = 10
        l.idleConnectionTimeoutSeconds = 300
        l.keepaliveIntervalSeconds = 60
        l.keepaliveTimeoutSeconds = 20
        l.maxAuthFailuresPerConnection = 3
        l.maxRefusalsPerConnection = 5
        l.refusalWindowSeconds = 10
        return l
    }

    @Test("accepting a TLS connection starts the handshake, first-request and keepalive timers; age only when set")
    func accepted() {
        var l = L(limits: limits)
        #expect(
            l.handle(.accepted(tls: true), now: 0) == [
                .schedule(.handshake, after: 10), .schedule(.firstRequest, after: 10), .schedule(.keepalive, after: 60),
            ])
        var aged = limits
        aged.maxConnectionAgeSeconds = 3600
        var m = L(limits: aged)
        #expect(m.handle(.accepted(tls: false), now: 0).contains(.schedule(.maxAge, after: 3600)))
        #expect(!m.handle(.accepted(tls: false), now: 0).contains(.schedule(.handshake, after: 10)))
    }

    @Test("a handshake that never finishes, or a connection that never sends a request, is closed and counted")
    func slowloris() {
        var l = L(limits: limits)
        _ = l.handle(.accepted(tls: true), now: 0)
        let actions = l.handle(.fired(.handshake), now: 10)
        #expect(actions.last == .close(.handshakeTimeout))
        #expect(l.isClosed)
        #expect(l.handle(.requestStarted, now: 11) == [])

        var m = L(limits: limits)
        _ = m.handle(.accepted(tls: true), now: 0)
        #expect(m.handle(.handshakeCompleted, now: 1) == [.cancel(.handshake)])
        #expect(m.handle(.fired(.firstRequest), now: 10).last == .close(.firstRequestTimeout))
    }

    @Test(
        "the first request cancels the first-request timer; the last stream closing starts the idle timer, which ends in GOAWAY then close"
    )
    func idle() {
        var l = L(limits: limits)
        _ = l.handle(.accepted(tls: false), now: 0)
        #expect(l.handle(.requestStarted, now: 1) == [.cancel(.firstRequest)])
        #expect(l.handle(.requestStarted, now: 1) == [])
        #expect(l.handle(.streamClosed(openStreams: 1), now: 2) == [])
        #expect(l.handle(.streamClosed(openStreams: 0), now: 3) == [.schedule(.idle, after: 300)])
        // Streams opening and closing afterwards touch no timer.
        #expect(l.handle(.requestStarted, now: 4) == [])
        #expect(l.handle(.streamClosed(openStreams: 0), now: 5) == [])
        // The timer set at 3 fires at 303; the connection has only been idle since 5.
        #expect(l.handle(.fired(.idle), now: 303) == [.schedule(.idle, after: 2)])
        #expect(l.handle(.fired(.idle), now: 305) == [.goAway(.idleTimeout, calm: false), .schedule(.close, after: 1)])
        #expect(l.handle(.fired(.close), now: 304).last == .close(nil))
    }

    @Test("a stale idle timer does nothing when a stream opened meanwhile")
    func staleIdle() {
        var l = L(limits: limits)
        _ = l.handle(.accepted(tls: false), now: 0)
        _ = l.handle(.requestStarted, now: 1)
        _ = l.handle(.streamClosed(openStreams: 0), now: 2)
        _ = l.handle(.requestStarted, now: 3)
        #expect(l.handle(.fired(.idle), now: 302) == [])
    }

    @Test("keepalive: a quiet peer is pinged and closed if it does not answer; an answer or any frame keeps it")
    func keepalive() {
        var l = L(limits: limits)
        _ = l.handle(.accepted(tls: false), now: 0)
        _ = l.handle(.frameReceived, now: 30)
        // Fired at 60 but the peer spoke at 30: wait out the rest.
        #expect(l.handle(.fired(.keepalive), now: 60) == [.schedule(.keepalive, after: 30)])
        #expect(
            l.handle(.fired(.keepalive), now: 90) == [
                .sendPing, .schedule(.keepaliveAck, after: 20), .schedule(.keepalive, after: 60),
            ])
        #expect(l.handle(.pingAcknowledged, now: 91) == [.cancel(.keepaliveAck)])
        #expect(
            l.handle(.fired(.keepalive), now: 151) == [
                .sendPing, .schedule(.keepaliveAck, after: 20), .schedule(.keepalive, after: 60),
            ])
        #expect(l.handle(.fired(.keepaliveAck), now: 171).last == .close(.keepaliveTimeout))
    }

    @Test("refused tokens past the budget get GOAWAY(ENHANCE_YOUR_CALM), once")
    func authFailures() {
        var l = L(limits: limits)
        _ = l.handle(.accepted(tls: false), now: 0)
        #expect(l.handle(.authenticationFailed, now: 1) == [])
        #expect(l.handle(.authenticationFailed, now: 2) == [])
        #expect(
            l.handle(.authenticationFailed, now: 3) == [
                .goAway(.authFailures, calm: true), .schedule(.close, after: 1),
            ])
        #expect(l.handle(.authenticationFailed, now: 4) == [])
    }

    @Test("Sparkgate's own refusals are budgeted in a sliding window, so churn through refusals is bounded")
    func refusals() {
        var l = L(limits: limits)
        _ = l.handle(.accepted(tls: false), now: 0)
        // spread out: old ones leave the window
        for t in 0..<4 { #expect(l.handle(.refused, now: Double(t) * 4) == []) }
        var m = L(limits: limits)
        _ = m.handle(.accepted(tls: false), now: 0)
        for t in 0..<4 { _ = m.handle(.refused, now: Double(t) * 0.1) }
        #expect(m.handle(.refused, now: 0.5) == [.goAway(.refusals, calm: true), .schedule(.close, after: 1)])
    }

    @Test("past its age a connection gets a graceful GOAWAY and is closed once its streams finish, or after the grace")
    func maxAge() {
        var aged = limits
        aged.maxConnectionAgeSeconds = 100
        aged.maxConnectionAgeGraceSeconds = 30
        var l = L(limits: aged)
        _ = l.handle(.accepted(tls: false), now: 0)
        _ = l.handle(.requestStarted, now: 1)
        #expect(
            l.handle(.fired(.maxAge), now: 100) == [.goAway(.connectionAge, calm: false), .schedule(.close, after: 30)])
        #expect(l.handle(.streamClosed(openStreams: 0), now: 110).last == .close(nil))
    }
}

@Suite("First bytes of a connection")
struct FirstBytesTests {
    @Test("a TLS ClientHello, the HTTP/2 preface, and anything else are told apart as soon as the bytes allow")
    func classify() {
        #expect(FirstBytes.classify([UInt8]()) == .needMore)
        #expect(FirstBytes.classify([0x16, 0x03, 0x01]) == .tls)
        #expect(FirstBytes.classify(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)) == .plaintextHTTP2)
        #expect(FirstBytes.classify(Array("PRI * HTTP".utf8)) == .needMore)
        #expect(FirstBytes.classify(Array("GET / HTTP/1.1\r\n".utf8)) == .other)
        #expect(FirstBytes.classify(Array("PRX".utf8)) == .other)
    }
}

@Suite("Connection credit")
struct ConnectionCreditTests {
    @Test("window goes back as calls release bytes, in batches; what the HTTP/2 layer drops undelivered comes back too")
    func credit() {
        var c = ConnectionCredit(target: 1 << 20, window: 1 << 20, batch: 1000)
        // 5000 bytes arrive for a call: the layer reports the window down, the call holds them.
        c.reported(window: (1 << 20) - 5000)
        c.delivered(5000)
        #expect(c.take() == 0)
        c.released(400)
        #expect(c.take() == 0)  // under a batch
        c.released(4600)
        #expect(c.take() == 5000)
        // 3000 bytes arrive on a stream just reset: never delivered, still returned.
        c.reported(window: (1 << 20) - 3000)
        #expect(c.take() == 3000)
    }

    @Test("the window starts at the protocol's 64 KiB and grows only when the target is raised")
    func raise() {
        var c = ConnectionCredit(target: 65_535)
        #expect(c.take(force: true) == 0)
        let raised = c.raise(target: 16 << 20)
        #expect(raised)
        #expect(c.take(force: true) == (16 << 20) - 65_535)
        let again = c.raise(target: 16 << 20)
        #expect(!again)
    }
}
