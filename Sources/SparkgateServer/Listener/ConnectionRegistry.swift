import NIOCore
import SparkgateEngines
import SparkgateSharedState
import SparkgateTransport
import Synchronization

/// Open client connections, so a shutdown can ask each to drain (GOAWAY) and then close what remains.
final class ConnectionRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { _ in
            _ = self.channels.withLock { $0.removeValue(forKey: id) }
        }
    }

    var count: Int { channels.withLock { $0.count } }

    /// Asks every connection to finish its streams and close (GOAWAY, then close when idle).
    func quiesceAll() {
        for channel in channels.withLock({ Array($0.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    func closeAll() {
        for channel in channels.withLock({ Array($0.values) }) { channel.close(promise: nil) }
    }
}
