import SparkgateCore
import Testing

@Suite("Port proof")
struct PortProofTests {
    /// Two lines of a real /proc/net/tcp: a listener on 127.0.0.1:20001 (0x4E21) and an established socket.
    static let table = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 0100007F:4E21 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 91234 1 0000000000000000 100 0 0 10 0
           1: 0100007F:4E21 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 91240 1 0000000000000000 20 4 30 10 -1
          junk line
        """

    @Test("the kernel's TCP table reads as ports, states and inodes")
    func table() {
        let sockets = PortProof.sockets(inTable: Self.table)
        #expect(
            sockets == [
                PortProof.Socket(localPort: 20001, state: 0x0A, inode: 91234),
                PortProof.Socket(localPort: 20001, state: 0x01, inode: 91240),
            ])
        #expect(PortProof.socketInode(link: "socket:[91234]") == 91234)
        #expect(PortProof.socketInode(link: "/dev/null") == nil)
        #expect(PortProof.socketInode(link: "socket:[x]") == nil)
    }

    @Test("proven only when every listener on the port is among the engine's sockets")
    func verdicts() {
        let sockets = PortProof.sockets(inTable: Self.table)
        #expect(PortProof.verdict(port: 20001, sockets: sockets, treeSockets: [91234]) == .proven)
        #expect(PortProof.verdict(port: 20001, sockets: sockets, treeSockets: [5]) == .foreign)
        #expect(PortProof.verdict(port: 20002, sockets: sockets, treeSockets: [91234]) == .noListener)
        // A second listener (SO_REUSEPORT, or another address) that is not the engine's spoils the proof.
        let shared = sockets + [PortProof.Socket(localPort: 20001, state: 0x0A, inode: 777)]
        #expect(PortProof.verdict(port: 20001, sockets: shared, treeSockets: [91234]) == .foreign)
        // The established socket alone is no listener.
        #expect(PortProof.verdict(port: 20001, sockets: [sockets[1]], treeSockets: [91240]) == .noListener)
    }

    @Test("the process tree follows parents, whatever a command name holds")
    func tree() {
        #expect(PortProof.parentPID(stat: "4242 (java) S 4200 4242 4242 0 -1") == 4200)
        #expect(PortProof.parentPID(stat: "4243 (a) b) S 4242 4242") == 4242)
        #expect(PortProof.parentPID(stat: "garbage") == nil)
        let parents: [Int32: Int32] = [10: 1, 11: 10, 12: 11, 13: 1, 14: 12]
        #expect(PortProof.tree(of: 10, parents: parents) == [10, 11, 12, 14])
    }
}
