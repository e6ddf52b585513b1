import Foundation

/// Header names and values that gRPC and Spark Connect send on every call, kept as string literals: a received
/// field that matches one costs a comparison instead of a heap-allocated `String` (Swift keeps strings of up to
/// 15 UTF-8 bytes inline, so only longer ones are listed).
enum WellKnownHeaders {
    static func name(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        match(bytes, in: names)
    }

    static func value(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        match(bytes, in: values)
    }

    private static let names = table([
        "grpc-accept-encoding", "grpc-status-details-bin", "grpc-previous-rpc-attempts",
    ])

    private static let values = table([
        "application/grpc", "application/grpc+proto", "identity,deflate,gzip", "identity, deflate, gzip",
        "/spark.connect.SparkConnectService/ExecutePlan", "/spark.connect.SparkConnectService/AnalyzePlan",
        "/spark.connect.SparkConnectService/Config", "/spark.connect.SparkConnectService/AddArtifacts",
        "/spark.connect.SparkConnectService/ArtifactStatus", "/spark.connect.SparkConnectService/Interrupt",
        "/spark.connect.SparkConnectService/ReattachExecute", "/spark.connect.SparkConnectService/ReleaseExecute",
        "/spark.connect.SparkConnectService/ReleaseSession", "/spark.connect.SparkConnectService/FetchErrorDetails",
        "/spark.connect.SparkConnectService/CloneSession", "/spark.connect.SparkConnectService/GetStatus",
    ])

    /// Each literal with its length, the first thing compared.
    private static func table(_ literals: [String]) -> [(count: Int, text: String)] {
        literals.map { (count: $0.utf8.count, text: $0) }
    }

    private static func match(_ bytes: UnsafeBufferPointer<UInt8>, in table: [(count: Int, text: String)]) -> String? {
        guard bytes.count > 15, let base = bytes.baseAddress else { return nil }
        for entry in table where entry.count == bytes.count {
            let equal = entry.text.utf8.withContiguousStorageIfAvailable {
                memcmp($0.baseAddress!, base, bytes.count) == 0
            }
            if equal == true { return entry.text }
        }
        return nil
    }
}
