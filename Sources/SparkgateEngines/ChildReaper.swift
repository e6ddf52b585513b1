import CSparkgateSystem
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The gateway as the reaper of what its engines leave behind: once it is a child subreaper, a process an
/// engine's tree orphans (a daemon that double-forked out of the engine's session) becomes the gateway's
/// child rather than init's, and is reaped here when it ends, whether or not the gateway is PID 1 in a
/// container. Only `serve` turns it on: a process that waits on children of its own must not reap them all.
package enum ChildReaper {
    private static let enabled = Atomic<Bool>(false)

    /// Makes this process the subreaper of its descendants; false where the system cannot.
    @discardableResult
    package static func enable() -> Bool {
        guard csparkgate_become_child_subreaper() == 0 else { return false }
        enabled.store(true, ordering: .relaxed)
        return true
    }

    package static var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    /// Reaps every child that has ended (engines and orphans alike): their exit statuses by pid, for the
    /// engines among them. Empty unless `enable()` succeeded.
    package static func reapAll() -> [Int32: Int32] {
        guard isEnabled else { return [:] }
        var statuses: [Int32: Int32] = [:]
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            statuses[pid] = EngineProcess.exitStatus(status)
        }
        return statuses
    }
}
