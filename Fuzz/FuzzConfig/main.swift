import SparkgateCore

/// libFuzzer target: the configuration loader on arbitrary YAML. It loads, or fails with issues that each
/// name a file and say what is wrong; it never traps.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        _ = try SparkgateConfig.parse(yaml: text, file: "/fuzz/sparkgate.yaml")
    } catch {
        precondition(!error.issues.isEmpty, "a refused configuration with no issue")
        for issue in error.issues { precondition(issue.file == "/fuzz/sparkgate.yaml" && !issue.message.isEmpty) }
    }
    return 0
}
