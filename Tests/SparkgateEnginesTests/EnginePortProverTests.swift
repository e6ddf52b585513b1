import Foundation
import SparkgateEngines
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The port proof read from the real `/proc`: an engine's port is its own only when a process of its tree
/// holds the listening socket.
@Suite("Engine port prover")
struct EnginePortProverTests {
    /// A listening TCP socket on a free loopback port; closed by the caller.
    static func listen() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        try #require(bound == 0 && Glibc.listen(fd, 4) == 0)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    @Test("the listener of this process's tree is proven; a process outside that tree is told it is foreign")
    func provenAndForeign() throws {
        let (fd, port) = try Self.listen()
        defer { close(fd) }
        #expect(EnginePortProver.verdict(pid: getpid(), port: port) == .proven)
        // A child of this process holds none of its sockets (close-on-exec aside, `sleep` opens none).
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sleep")
        child.arguments = ["5"]
        try child.run()
        defer { child.terminate() }
        #expect(EnginePortProver.verdict(pid: child.processIdentifier, port: port) == .foreign)
    }

    @Test("a port nobody listens on has no listener yet")
    func noListener() throws {
        let (fd, port) = try Self.listen()
        close(fd)
        #expect(EnginePortProver.verdict(pid: getpid(), port: port) == .noListener)
    }
}
