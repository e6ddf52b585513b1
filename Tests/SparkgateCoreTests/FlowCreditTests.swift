import SparkgateCore
import SparkgateTestSupport
import Testing

@Suite("Flow credit")
struct FlowCreditTests {
    @Test("credit is returned in batches while the receiver keeps up")
    func batches() {
        var c = FlowCredit(highWatermark: 1000, lowWatermark: 200, batch: 100)
        c.received(60)
        #expect(c.take() == 0)
        c.received(60)
        #expect(c.take() == 120)
        #expect(c.take() == 0)
        c.received(10)
        #expect(c.take(force: true) == 10)
    }

    @Test("a slow receiver holds credit back until it drains below the low watermark")
    func hold() {
        var c = FlowCredit(highWatermark: 1000, lowWatermark: 200, batch: 1)
        c.received(500)
        c.wrote(500)
        #expect(c.take() == 500)
        c.received(600)
        c.wrote(600)  // 1100 outstanding
        #expect(c.isHeld)
        #expect(c.take(force: true) == 0)
        c.flushed(800)  // 300 outstanding: still above the low watermark
        #expect(c.take(force: true) == 0)
        c.flushed(150)
        #expect(!c.isHeld)
        #expect(c.take(force: true) == 600)
    }

    @Test("whatever the interleaving, the sender's bytes in flight stay bounded by window plus watermark")
    func bounded() {
        var rng = SplitMix64(seed: 11)
        let window = 4096
        var c = FlowCredit(highWatermark: 2048, lowWatermark: 512, batch: 256)
        var senderCredit = window  // what the peer may still send
        var inGateway = 0  // received, not yet flushed onward
        for _ in 0..<100_000 {
            switch rng.next() % 3 {
            case 0 where senderCredit > 0:
                let n = Int(rng.next() % UInt64(senderCredit)) + 1
                senderCredit -= n
                c.received(n)
                c.wrote(n)
                inGateway += n
            case 1 where inGateway > 0:
                let n = Int(rng.next() % UInt64(inGateway)) + 1
                c.flushed(n)
                inGateway -= n
            default:
                senderCredit += c.take(force: rng.next() % 2 == 0)
            }
            // Credit is conserved: what the sender may send plus what it sent and was not credited is its window.
            #expect(senderCredit + c.unacknowledged == window)
            // Bytes held by the gateway never exceed the window plus the high watermark (plus the batch that
            // crossed it).
            #expect(inGateway <= window + c.highWatermark)
        }
    }
}

@Suite("Flow credit for large messages")
struct FlowCreditLargeMessageTests {
    @Test("a 4 MiB message in flight does not stop credit for the next one")
    func overlap() {
        var c = FlowCredit(highWatermark: 1 << 20, lowWatermark: 256 << 10, batch: 64 << 10)
        c.accommodate(messageBytes: 4 << 20, ceiling: 32 << 20)
        c.wrote(4 << 20)
        #expect(!c.isHeld)
        c.received(1 << 20)
        #expect(c.take() == 1 << 20)
        c.wrote(4 << 20)
        c.wrote(1)
        #expect(c.isHeld)  // two messages and more: now the receiver is the bottleneck
    }

    @Test("the watermark never exceeds the ceiling")
    func ceiling() {
        var c = FlowCredit()
        c.accommodate(messageBytes: 100 << 20, ceiling: 32 << 20)
        #expect(c.highWatermark == 32 << 20)
        c.accommodate(messageBytes: 1 << 10, ceiling: 32 << 20)
        #expect(c.highWatermark == 32 << 20)
    }
}
