import NIOCore
import SparkgateRESP

/// libFuzzer target: the RESP reply parser on arbitrary bytes cut into arbitrary chunks (a broken or hostile
/// Redis, or a man in the middle without TLS). It must never crash, never consume bytes without returning a
/// value, and parse the same values whatever the cuts.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 1 else { return 0 }
    let cut = Int(data[0]) + 1
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let parser = RESPParser(maxBulkBytes: 1 << 16, maxArrayElements: 1024, maxDepth: 8)
    let whole = values(bytes, cut: bytes.count, parser)
    let chunked = values(bytes, cut: cut, parser)
    // Chunking may only stop earlier (an error seen sooner), never give other values.
    precondition(
        chunked.values == Array(whole.values.prefix(chunked.values.count)), "chunking changed the parsed values")
    if !whole.failed && !chunked.failed { precondition(chunked.values == whole.values, "chunking lost values") }
    return 0
}

private func values(_ bytes: [UInt8], cut: Int, _ parser: RESPParser) -> (values: [RESPValue], failed: Bool) {
    var buffer = ByteBuffer()
    var out: [RESPValue] = []
    var offset = 0
    while offset < bytes.count {
        buffer.writeBytes(bytes[offset..<min(bytes.count, offset + cut)])
        offset += cut
        do {
            while true {
                let before = buffer.readerIndex
                guard let value = try parser.parse(&buffer) else {
                    precondition(buffer.readerIndex == before, "bytes consumed without a value")
                    break
                }
                out.append(value)
            }
        } catch {
            return (out, true)
        }
    }
    return (out, false)
}
