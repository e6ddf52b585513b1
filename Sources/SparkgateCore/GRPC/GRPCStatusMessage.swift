/// Percent-encoding of `grpc-message`, as the gRPC HTTP/2 spec requires: every byte outside
/// printable ASCII, and `%` itself, is written as `%XX`.
public enum GRPCStatusMessage {
    public static func encode(_ message: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(message.utf8.count)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in message.utf8 {
            if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ message: String) -> String {
        var out: [UInt8] = []
        var bytes = message.utf8.makeIterator()
        while let byte = bytes.next() {
            guard byte == UInt8(ascii: "%") else {
                out.append(byte)
                continue
            }
            guard let hi = bytes.next(), let lo = bytes.next(),
                let h = HexDigit.value(hi), let l = HexDigit.value(lo)
            else {
                out.append(byte)
                continue
            }
            out.append(h << 4 | l)
        }
        return String(decoding: out, as: UTF8.self)
    }
}
