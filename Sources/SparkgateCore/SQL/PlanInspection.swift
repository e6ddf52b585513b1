/// What Sparkgate finds in a plan-carrying request (ExecutePlan, AnalyzePlan) before Spark plans it.
///
/// Spark runs SQL commands (a `SET` among them) eagerly while it plans, wherever the SQL relation sits in
/// the plan tree, so every nested message and every string is looked at: a length-delimited field that
/// parses as a message is walked into, and every one is also read as SQL text. Protobuf has no schema on
/// the wire, so this errs on the side of seeing too much (a string literal that happens to read
/// `SET denied.key=1` is refused too).
public struct PlanInspection: Sendable, Equatable {
    public var statements: [SQLConfigStatement] = []
    /// The plan is compressed (`Plan.compressed_operation`): its content cannot be read.
    public var compressed = false
    /// The walk ran out of its budget (a plan nested too deeply or crafted to cost): nothing can be said.
    public var exhausted = false

    public init() {}

    /// Work allowed per byte of message (each byte is walked once per message that encloses it), with a floor.
    static let budgetPerByte = 32
    static let budgetFloor = 64 << 20
    static let maximumDepth = 1024

    public static func inspect(_ bytes: UnsafeRawBufferPointer, method: SparkConnectMethod) -> PlanInspection {
        var result = PlanInspection()
        var budget = max(budgetFloor, bytes.count * budgetPerByte)
        result.walk(bytes, 0..<bytes.count, depth: 0, budget: &budget)
        result.compressed = containsCompressedPlan(bytes, method: method)
        return result
    }

    private mutating func walk(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, depth: Int, budget: inout Int) {
        guard !exhausted else { return }
        budget -= range.count
        guard budget >= 0, depth < Self.maximumDepth else {
            exhausted = true
            return
        }
        var cursor = WireCursor(bytes, range: range)
        var nested: [Range<Int>] = []
        do {
            while let field = try cursor.next() {
                if field.wireType == .lengthDelimited { nested.append(field.value) }
            }
        } catch {
            return  // not a message: its bytes were (or will be) read as text by the caller
        }
        for value in nested {
            let text = UnsafeRawBufferPointer(rebasing: bytes[value])
            statements += SQLConfigScan.statements(in: text)
            walk(bytes, value, depth: depth + 1, budget: &budget)
        }
    }

    /// `Plan.compressed_operation` (field 3) in the request's plan: ExecutePlan's `plan` (field 3), or the
    /// `plan` (field 1) and SameSemantics' `other_plan` (field 2) of AnalyzePlan's analysis (fields 4–18).
    static func containsCompressedPlan(_ bytes: UnsafeRawBufferPointer, method: SparkConnectMethod) -> Bool {
        func planIsCompressed(_ plan: WireField, _ c: WireCursor) -> Bool {
            var fields = c.nested(plan)
            while let f = try? fields.next() {
                if f.number == 3 && f.wireType == .lengthDelimited { return true }
            }
            return false
        }
        var top = WireCursor(bytes)
        while let field = try? top.next() {
            guard field.wireType == .lengthDelimited else { continue }
            switch (method, field.number) {
            case (.executePlan, 3):
                if planIsCompressed(field, top) { return true }
            case (.analyzePlan, 4...18):
                var analysis = top.nested(field)
                while let f = try? analysis.next() {
                    if (f.number == 1 || f.number == 2) && f.wireType == .lengthDelimited && planIsCompressed(f, top) {
                        return true
                    }
                }
            default:
                break
            }
        }
        return false
    }
}
