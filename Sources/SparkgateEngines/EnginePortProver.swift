import Foundation
import SparkgateCore
import SparkgateSharedState
import SparkgateTransport

#if canImport(Glibc)
    import Glibc
#endif

/// Proves, from `/proc`, that the listener on a launched engine's port is the engine's (`PortProof`).
package enum EnginePortProver {
    /// The verdict for the engine whose process (a session leader) is `pid`, listening on `port`.
    package static func verdict(pid: Int32, port: Int) -> PortProof.Verdict {
        let sockets = ["/proc/net/tcp", "/proc/net/tcp6"].flatMap { path in
            (try? String(contentsOfFile: path, encoding: .utf8)).map(PortProof.sockets(inTable:)) ?? []
        }
        let listening = sockets.filter { $0.isListening && $0.localPort == port }
        if listening.isEmpty { return .noListener }
        return PortProof.verdict(port: port, sockets: listening, treeSockets: socketInodes(ofTreeOf: pid))
    }

    /// The sockets the processes of `root`'s tree hold open.
    package static func socketInodes(ofTreeOf root: Int32) -> Set<UInt64> {
        var parents: [Int32: Int32] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let parent = PortProof.parentPID(stat: stat)
            else { continue }
            parents[pid] = parent
        }
        var inodes: Set<UInt64> = []
        for pid in PortProof.tree(of: root, parents: parents) {
            let dir = "/proc/\(pid)/fd"
            for fd in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                if let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\(fd)"),
                    let inode = PortProof.socketInode(link: link)
                {
                    inodes.insert(inode)
                }
            }
        }
        return inodes
    }
}
