import NIOCore

/// Something with a deadline in a loop's `DeadlineQueue`.
package protocol DeadlineOwner: AnyObject {
    /// Its place in the queue, kept by the queue (nil: not queued).
    var deadlineSlot: Int? { get set }
    /// Its deadline passed; it is no longer queued.
    func deadlinePassed()
}

/// The deadlines of one event loop's calls (`grpc-timeout`), in one binary heap under one loop timer, instead
/// of a timer scheduled and cancelled per call. A removed deadline leaves the timer as it is: the timer fires
/// early at worst, finds nothing due and is set for the next deadline, so steady traffic (PySpark gives every
/// call a deadline of minutes) schedules a timer about once per deadline's length, not once per call.
/// Touched only on its loop.
package final class DeadlineQueue {
    private struct Entry {
        var at: NIODeadline
        var owner: any DeadlineOwner
    }

    private let eventLoop: any EventLoop
    private var heap: [Entry] = []
    private var timer: (at: NIODeadline, task: Scheduled<Void>)?

    package init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    package var count: Int { heap.count }

    /// Queues `owner` to be told at `at`; a queued owner is moved to the new deadline.
    package func add(_ owner: any DeadlineOwner, at: NIODeadline) {
        remove(owner)
        heap.append(Entry(at: at, owner: owner))
        owner.deadlineSlot = heap.count - 1
        siftUp(heap.count - 1)
        arm()
    }

    /// Forgets `owner`'s deadline, if it has one.
    package func remove(_ owner: any DeadlineOwner) {
        guard let slot = owner.deadlineSlot, slot < heap.count, heap[slot].owner === owner else { return }
        owner.deadlineSlot = nil
        let last = heap.count - 1
        if slot != last {
            heap.swapAt(slot, last)
            heap[slot].owner.deadlineSlot = slot
        }
        heap.removeLast()
        if slot < heap.count {
            siftDown(slot)
            siftUp(slot)
        }
    }

    /// Tells every owner whose deadline is at or before `now`, earliest first, then sets the timer for the
    /// next one. An owner told may add or remove deadlines.
    package func expire(now: NIODeadline) {
        while let first = heap.first, first.at <= now {
            remove(first.owner)
            first.owner.deadlinePassed()
        }
        arm()
    }

    /// The timer is set for the earliest deadline, unless it is already set for one no later.
    private func arm() {
        guard let first = heap.first else { return }
        if let timer, timer.at <= first.at { return }
        timer?.task.cancel()
        let at = first.at
        let task = eventLoop.assumeIsolated().scheduleTask(deadline: at) { [weak self] in
            guard let self else { return }
            self.timer = nil
            self.expire(now: self.eventLoop.now)
        }
        timer = (at, task)
    }

    private func siftUp(_ index: Int) {
        var child = index
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].at < heap[parent].at else { return }
            swapEntries(child, parent)
            child = parent
        }
    }

    private func siftDown(_ index: Int) {
        var parent = index
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].at < heap[smallest].at { smallest = left }
            if right < heap.count && heap[right].at < heap[smallest].at { smallest = right }
            guard smallest != parent else { return }
            swapEntries(parent, smallest)
            parent = smallest
        }
    }

    private func swapEntries(_ a: Int, _ b: Int) {
        heap.swapAt(a, b)
        heap[a].owner.deadlineSlot = a
        heap[b].owner.deadlineSlot = b
    }
}
