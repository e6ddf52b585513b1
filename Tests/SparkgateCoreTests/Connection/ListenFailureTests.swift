import SparkgateCore
import Testing

@Suite("A listener that cannot bind")
struct ListenFailureTests {
    let address = HostPort(host: "127.0.0.1", port: 15443)

    @Test("the common refusals are said in words, with the key to change; any other keeps the socket's own text")
    func reasons() {
        let taken = ListenFailure(key: "listen", address: address, errno: 98, detail: "bind: Address already in use")
        #expect(
            taken.description
                == "cannot listen on 127.0.0.1:15443 (listen): the address is already in use: another process listens on it; stop it or choose another port"
        )
        let low = ListenFailure(
            key: "admin.listen", address: HostPort(host: "0.0.0.0", port: 80), errno: 13, detail: "EACCES")
        #expect(low.description.hasPrefix("cannot listen on 0.0.0.0:80 (admin.listen): permission denied"))
        #expect(low.description.contains("CAP_NET_BIND_SERVICE"))
        let foreign = ListenFailure(key: "listen", address: address, errno: 99, detail: "EADDRNOTAVAIL")
        #expect(foreign.reason.hasPrefix("no network interface of this host has that address"))
        let other = ListenFailure(key: "listen", address: address, errno: nil, detail: "unknown host 'nowhere'")
        #expect(other.description == "cannot listen on 127.0.0.1:15443 (listen): unknown host 'nowhere'")
    }
}
