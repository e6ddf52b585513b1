/// A replacement of one byte range of a message: how Sparkgate changes a field without re-encoding the rest.
public struct ByteEdit: Sendable, Equatable {
    /// The range replaced; an empty range inserts.
    public var range: Range<Int>
    public var replacement: [UInt8]

    public init(range: Range<Int>, replacement: [UInt8]) {
        self.range = range
        self.replacement = replacement
    }

    public var lengthChange: Int { replacement.count - range.count }
}

extension Array where Element == ByteEdit {
    /// The message length after applying these edits to a message of `length` bytes.
    public func resultLength(from length: Int) -> Int {
        reduce(length) { $0 + $1.lengthChange }
    }

    /// Applies non-overlapping edits, given in ascending order, to `bytes`.
    public func applied(to bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(resultLength(from: bytes.count))
        var position = 0
        for edit in self {
            precondition(edit.range.lowerBound >= position, "edits must be ordered and disjoint")
            out.append(contentsOf: bytes[position..<edit.range.lowerBound])
            out.append(contentsOf: edit.replacement)
            position = edit.range.upperBound
        }
        out.append(contentsOf: bytes[position..<bytes.count])
        return out
    }
}
