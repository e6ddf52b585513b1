import NIOCore
import NIOPosix
import SparkgateCore

/// What both of Sparkgate's servers (the gateway's listener and the admin API) do with their listening socket.
extension ServerBootstrap {
    /// Binds `address`, or throws a `ListenFailure` that names the configuration key and says why.
    package func bind(_ address: HostPort, key: String) async throws -> any Channel {
        do {
            return try await bind(host: address.host, port: address.port).get()
        } catch {
            throw ListenFailure(key: key, address: address, errno: (error as? IOError)?.errnoCode, detail: "\(error)")
        }
    }
}

extension Channel {
    /// Waits until the channel closes. A future's wait ignores task cancellation, and the service group
    /// cancels every service when one fails: cancelling this wait closes the channel (and runs `onCancel`),
    /// so the process ends rather than staying up with one port.
    package func closedOrCancelled(onCancel: @escaping @Sendable () -> Void = {}) async throws {
        try await withTaskCancellationHandler {
            try await closeFuture.get()
        } onCancel: {
            close(promise: nil)
            onCancel()
        }
    }
}
