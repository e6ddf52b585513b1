import NIOCore

/// Writes a command as Redis expects it from clients: an array of bulk strings.
public enum RESPCommand {
    public static func encode(_ arguments: [[UInt8]], into buffer: inout ByteBuffer) {
        buffer.writeStaticString("*")
        buffer.writeString(String(arguments.count))
        buffer.writeStaticString("\r\n")
        for argument in arguments {
            buffer.writeStaticString("$")
            buffer.writeString(String(argument.count))
            buffer.writeStaticString("\r\n")
            buffer.writeBytes(argument)
            buffer.writeStaticString("\r\n")
        }
    }

    public static func arguments(_ parts: [String]) -> [[UInt8]] {
        parts.map { Array($0.utf8) }
    }
}
