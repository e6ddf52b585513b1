/// What one `ExecutePlanResponse.arrow_batch` adds to a result, read without decoding Arrow.
///
/// From Spark 4.1 a batch may be split across responses: every chunk repeats the batch's total `row_count`,
/// so rows are counted once, on the last chunk (or on an unchunked batch).
public struct ArrowBatchCount: Sendable, Equatable {
    public var bytes: Int
    public var rows: Int64

    public init(bytes: Int = 0, rows: Int64 = 0) {
        self.bytes = bytes
        self.rows = rows
    }

    static func read(_ batch: WireCursor) throws(WireError) -> ArrowBatchCount {
        var fields = batch
        var rowCount: UInt64 = 0
        var dataBytes = 0
        var chunkIndex: UInt64?
        var chunks: UInt64?
        while let f = try fields.next() {
            switch (f.number, f.wireType) {
            case (1, .varint): rowCount = f.varint
            case (2, .lengthDelimited): dataBytes = f.value.count
            case (4, .varint): chunkIndex = f.varint
            case (5, .varint): chunks = f.varint
            default: break
            }
        }
        let lastChunk: Bool
        if let chunks, chunks > 0 {
            lastChunk = chunkIndex.map { $0 == chunks - 1 } ?? false
        } else {
            lastChunk = true
        }
        // row_count is an int64 on the wire; a negative one is a broken server, counted as nothing.
        let rows = Int64(truncatingIfNeeded: rowCount)
        return ArrowBatchCount(bytes: dataBytes, rows: lastChunk && rows > 0 ? rows : 0)
    }
}
