/// Whether the listener on an engine's port belongs to the engine Sparkgate launched: its listening socket
/// must be among the open files of the engine's process tree. Until that is proven, the engine gets neither
/// its token nor a tenant's call, so a process that took the port first (or after the engine died) receives
/// nothing. Pure: the socket table and the tree's sockets are read by the caller (on Linux, from `/proc`).
public enum PortProof {
    public enum Verdict: Sendable, Equatable {
        /// The listener is the engine's.
        case proven
        /// Nothing listens on the port yet: the engine is still starting.
        case noListener
        /// Something else listens on the port.
        case foreign
    }

    /// A socket of the kernel's TCP table (`/proc/net/tcp`, `/proc/net/tcp6`).
    public struct Socket: Sendable, Equatable {
        public var localPort: Int
        /// The kernel's TCP state: 0x0A is LISTEN.
        public var state: UInt8
        public var inode: UInt64

        public init(localPort: Int, state: UInt8, inode: UInt64) {
            self.localPort = localPort
            self.state = state
            self.inode = inode
        }

        public var isListening: Bool { state == 0x0A }
    }

    public static func verdict(port: Int, sockets: [Socket], treeSockets: Set<UInt64>) -> Verdict {
        let listeners = sockets.filter { $0.isListening && $0.localPort == port }
        guard !listeners.isEmpty else { return .noListener }
        // Every listener on the port must be the engine's: another one (SO_REUSEPORT, another address)
        // could take some of the connections.
        return listeners.allSatisfy { $0.inode != 0 && treeSockets.contains($0.inode) } ? .proven : .foreign
    }

    /// Reads a `/proc/net/tcp` or `/proc/net/tcp6` table; lines that do not parse are skipped.
    public static func sockets(inTable text: String) -> [Socket] {
        var found: [Socket] = []
        for line in text.split(separator: "\n").dropFirst() {
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 10, let colon = fields[1].lastIndex(of: ":"),
                let port = Int(fields[1][fields[1].index(after: colon)...], radix: 16),
                let state = UInt8(fields[3], radix: 16),
                let inode = UInt64(fields[9])
            else { continue }
            found.append(Socket(localPort: port, state: state, inode: inode))
        }
        return found
    }

    /// The socket inode a `/proc/<pid>/fd/<n>` link names (`socket:[12345]`), if it is a socket.
    public static func socketInode(link: String) -> UInt64? {
        guard link.hasPrefix("socket:["), link.hasSuffix("]") else { return nil }
        return UInt64(link.dropFirst(8).dropLast())
    }

    /// The parent pid in a `/proc/<pid>/stat` line (the command name in parentheses may hold anything).
    public static func parentPID(stat text: String) -> Int32? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let rest = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        return rest.count >= 2 ? Int32(rest[1]) : nil
    }

    /// `root` and every process descending from it, from each process's parent.
    public static func tree(of root: Int32, parents: [Int32: Int32]) -> Set<Int32> {
        var children: [Int32: [Int32]] = [:]
        for (pid, parent) in parents { children[parent, default: []].append(pid) }
        var tree: Set<Int32> = [root]
        var queue = [root]
        while let pid = queue.popLast() {
            for child in children[pid] ?? [] where tree.insert(child).inserted { queue.append(child) }
        }
        return tree
    }
}
