import NIOCore
import SparkgateFraming

/// libFuzzer target: the gRPC message reader on an arbitrary byte stream cut into arbitrary chunks. Every byte
/// is accounted for: the messages it yields plus what it still holds equal what went in, and no message
/// disagrees with the prefix announced before it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 1 else { return 0 }
    let cut = Int(data[0]) + 1
    var reader = GRPCMessageReader(trustsLengths: data[0] & 1 == 1)
    var offset = 1
    var consumed = 0
    var announced: Int?
    while offset < size {
        let n = min(cut, size - offset)
        var buffer = ByteBufferAllocator().buffer(capacity: n)
        buffer.writeBytes(UnsafeRawBufferPointer(start: data + offset, count: n))
        offset += n
        reader.append(buffer)
        while let item = reader.next() {
            switch item {
            case .prefix(let length, _):
                precondition(announced == nil, "two prefixes without a message")
                // A hostile length is refused by the caller at this point; stop as the gateway would.
                if length > 1 << 20 { return 0 }
                announced = length
            case .message(let message):
                precondition(message.payloadLength == announced, "a message of another length than announced")
                announced = nil
                consumed += message.framed.readableBytes
            }
        }
    }
    precondition(consumed + reader.bufferedBytes == size - 1, "bytes lost or invented")
    return 0
}
