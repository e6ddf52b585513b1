import Foundation
import NIOCore
import NIOEmbedded
import SparkgateTestSupport
import SparkgateTransport
import Testing

@Suite("A loop's deadline queue")
struct DeadlineQueueTests {
    final class Owner: DeadlineOwner {
        let name: Int
        var deadlineSlot: Int?
        let told: (Int) -> Void
        init(_ name: Int, told: @escaping (Int) -> Void) {
            self.name = name
            self.told = told
        }
        func deadlinePassed() { told(name) }
    }

    @Test("owners are told in deadline order as time passes; removed and moved deadlines are honoured")
    func order() {
        let loop = EmbeddedEventLoop()
        let queue = DeadlineQueue(eventLoop: loop)
        var told: [Int] = []
        let owners = (0..<5).map { Owner($0) { told.append($0) } }
        let start = loop.now
        for (owner, ms) in zip(owners, [50, 10, 40, 20, 30]) { queue.add(owner, at: start + .milliseconds(Int64(ms))) }
        queue.remove(owners[2])
        queue.add(owners[0], at: start + .milliseconds(5))
        loop.advanceTime(by: .milliseconds(25))
        #expect(told == [0, 1, 3])
        loop.advanceTime(by: .milliseconds(100))
        #expect(told == [0, 1, 3, 4])
        #expect(queue.count == 0 && owners.allSatisfy { $0.deadlineSlot == nil })
    }

    @Test("random adds, removes and time against a model: the same owners told, in the same order")
    func againstModel() {
        var (rng, seed) = SplitMix64.seeded("deadline queue")
        let loop = EmbeddedEventLoop()
        let queue = DeadlineQueue(eventLoop: loop)
        var told: [Int] = []
        let owners = (0..<64).map { Owner($0) { told.append($0) } }
        var model: [Int: Int64] = [:]  // owner -> deadline (ns since start)
        var expected: [Int] = []
        let start = loop.now
        var elapsed: Int64 = 0
        var used: Set<Int64> = []
        for _ in 0..<5_000 {
            switch rng.next() % 10 {
            case 0..<5:
                let owner = Int(rng.next() % 64)
                // Distinct deadlines, so the order is defined.
                var at = elapsed + Int64(rng.next() % 64_000_000)
                while used.contains(at) { at += 1 }
                used.insert(at)
                model[owner] = at
                queue.add(owners[owner], at: start + .nanoseconds(at))
            case 5..<8:
                let owner = Int(rng.next() % 64)
                model[owner] = nil
                queue.remove(owners[owner])
            default:
                elapsed += Int64(rng.next() % 20_000_000)
                let due = model.filter { $0.value <= elapsed }.sorted { $0.value < $1.value }
                expected += due.map(\.key)
                for (owner, _) in due { model[owner] = nil }
                loop.advanceTime(to: start + .nanoseconds(elapsed))
                #expect(told == expected, "seed \(seed)")
                if told != expected { return }
            }
        }
        #expect(queue.count == model.count, "seed \(seed)")
    }
}
