import SparkgateCore

/// Where a ready launched engine listens and the token it accepts.
package struct EngineTarget: Sendable, Equatable {
    package var id: String
    package var address: HostPort
    package var token: String
    /// The engine's process, when this replica launched it (its port can then be proven, `PortProof`).
    package var pid: Int32?

    package init(id: String, address: HostPort, token: String, pid: Int32? = nil) {
        self.id = id
        self.address = address
        self.token = token
        self.pid = pid
    }
}

/// Finds a launched engine by id, for the calls Sparkgate makes on a session's behalf.
package protocol EngineLookup: Sendable {
    func target(_ id: String) -> EngineTarget?
}
