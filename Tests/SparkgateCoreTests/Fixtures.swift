import Foundation
import SparkgateCore

/// Spark Connect messages recorded from the real PySpark 4.3 client and Spark Connect 4.3 server
/// (`scripts/dev/capture-fixtures.py`), with `expected.json` decoded by the official protobuf classes.
enum Fixtures {
    static let directory: URL = {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    }()

    static func bytes(_ name: String) -> [UInt8] {
        Array(try! Data(contentsOf: directory.appendingPathComponent(name)))
    }

    nonisolated(unsafe) static let expected: [String: [String: Any]] = {
        let data = try! Data(contentsOf: directory.appendingPathComponent("expected.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: [String: Any]]
    }()

    /// Every fixture of one message type, e.g. "ConfigRequest".
    static func names(_ kind: String) -> [String] {
        expected.keys.filter { $0.hasPrefix(kind + "-") }.sorted()
    }

    static func method(ofKind kind: String) -> SparkConnectMethod {
        let name = kind.replacingOccurrences(of: "Request", with: "").replacingOccurrences(of: "Response", with: "")
        return SparkConnectMethod(path: SparkConnectMethod.servicePrefix + name)!
    }
}

extension Array where Element == UInt8 {
    func withRaw<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(body)
    }
}
