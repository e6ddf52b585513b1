/// What a Config RPC asks for, read from `ConfigRequest.operation` (field 3).
public struct ConfigOperation: Sendable, Equatable {
    public enum Kind: Int, Sendable {
        case set = 1, get, getWithDefault, getOption, getAll, unset, isModifiable
    }

    public var kind: Kind?
    /// The keys the operation names: `keys` of get/get_option/unset/is_modifiable, the pair keys of set/get_with_default.
    public var keys: [String]

    public init(kind: Kind?, keys: [String]) {
        self.kind = kind
        self.keys = keys
    }

    /// Whether this operation changes configuration (as opposed to reading it).
    public var writes: Bool { kind == .set || kind == .unset }

    static func read(_ cursor: WireCursor) throws(WireError) -> ConfigOperation {
        var op = ConfigOperation(kind: nil, keys: [])
        var fields = cursor
        while let field = try fields.next() {
            guard field.wireType == .lengthDelimited, let kind = Kind(rawValue: field.number) else { continue }
            // A oneof set twice on the wire: the last one wins, as in every protobuf parser.
            op = ConfigOperation(kind: kind, keys: [])
            var inner = cursor.nested(field)
            while let f = try inner.next() {
    guard f.number == 1 && f.wireType == .lengthDelimited else { continue }
                switch kind {
                case .set, .getWithDefault:
                    var pair = cursor.nested(f)
                    while let p = try pair.next() {
    guard p.number == 1 && p.wireType == .lengthDelimited else { continue }
                        op.keys.append(cursor.string(p))
                    }
                case .get, .getOption, .unset, .isModifiable:
                    op.keys.append(cursor.string(f))
                case .getAll:
                    break
                }
            }
        }
        return op
    }
}
