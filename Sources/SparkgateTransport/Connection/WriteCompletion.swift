import NIOCore

/// Told when bytes it queued have been written to the connection (or dropped with their stream): a call's
/// flow control counts each message until then. Cheaper per message than a promise and its callback.
package protocol WriteListener: AnyObject {
    /// `token` is what the listener gave with the write.
    func written(_ token: Int)
}

/// What to complete once queued DATA is written: a promise (the pipeline's way) or a listener.
package enum WriteCompletion {
    case promise(EventLoopPromise<Void>)
    case listener(any WriteListener, token: Int)

    package func complete(_ result: Result<Void, any Error>) {
        switch self {
        case .promise(let promise): promise.completeWith(result)
        case .listener(let listener, let token): listener.written(token)
        }
    }
}
