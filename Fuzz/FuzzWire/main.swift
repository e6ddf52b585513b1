import SparkgateCore

/// libFuzzer target: the wire-level envelope reader and rewriter on arbitrary bytes, for every method.
/// Whatever the bytes, reading throws or succeeds, and a successful read's edits are ordered, in bounds and
/// apply without trapping.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    let methods = SparkConnectMethod.known + [.other("Future")]
    let method = methods[Int(data[0]) % methods.count]
    if let envelope = try? RequestEnvelope.read(bytes, method: method) {
        let rewrite = RequestRewrite(
            userID: "alice", backendSessionID: "00000000-0000-4000-8000-000000000001",
            backendNewSessionID: "00000000-0000-4000-8000-000000000002",
            insertedOperationID: "00000000-0000-4000-8000-000000000003")
        let edits = rewrite.edits(for: envelope, in: bytes)
        var last = 0
        for edit in edits {
            precondition(
                edit.range.lowerBound >= last && edit.range.upperBound <= bytes.count, "edits out of order or bounds")
            last = edit.range.upperBound
        }
        let rewritten = edits.applied(to: bytes)
        // The rewritten message reads back with the verified user in place of whatever the client claimed.
        let again = rewritten.withUnsafeBytes { try? RequestEnvelope.read($0, method: method) }
        precondition(again != nil, "a rewritten message no longer parses")
        precondition(again?.clientUserID == "alice", "the rewritten user_context does not name the verified user")
        _ = try? FirstMessageDecision.decide(
            envelope,
            FirstMessageContext(
                method: method, identity: Identity(user: "alice", team: "t"),
                team: .init(backend: "b", quotas: QuotaSettings()),
                policy: CallPolicy(
                    maxMessageBytes: 1 << 27, configPolicy: ConfigPolicy(denyKeys: ConfigPolicy.defaultDenyKeys),
                    namespace: nil, rejectForeignSessionIDs: true),
                draining: false)
        ).get()
    }
    if let response = try? ResponseEnvelope.read(bytes, method: method) {
        let edits = ResponseRewrite(
            clientSessionID: "00000000-0000-4000-8000-000000000009", configPolicy: ConfigPolicy(denyKeys: ["*"]),
            dropDeniedPairs: true
        )
        .edits(for: response, method: method)
        _ = edits.applied(to: bytes)
    }
    _ = GRPCErrorInfo.errorClass(inStatus: bytes)
    return 0
}
