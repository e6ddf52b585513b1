/// What a Config RPC asks for, read from `ConfigRequest.operation` (field 3) exactly as protobuf parsers
/// (protobuf-java in Spark, prost in Sail) merge it.
///
/// `operation` and the oneof inside it may repeat on the wire. Protobuf applies occurrences in order: the
/// same oneof member merges into the one already there (its repeated `pairs`/`keys` concatenate), another
/// member replaces it. Reading only one occurrence would let a denied key ride past the check in another.
public struct ConfigOperation: Sendable, Equatable {
    public enum Kind: Int, Sendable {
        case set = 1, get, getWithDefault, getOption, getAll, unset, isModifiable
    }

    /// The oneof member the engine acts on.
    public var kind: Kind?
    /// The keys it names: `keys` of get/get_option/unset/is_modifiable, the pair keys of set/get_with_default.
    public var keys: [String]

    public init(kind: Kind?, keys: [String]) {
        self.kind = kind
        self.keys = keys
    }

    /// Whether this operation changes configuration (as opposed to reading it).
    public var writes: Bool { kind == .set || kind == .unset }

    /// Merges one occurrence of `ConfigRequest.operation` into what earlier occurrences left.
    mutating func merge(_ operation: WireCursor) throws(WireError) {
        var fields = operation
        while let field = try fields.next() {
            guard field.wireType == .lengthDelimited, let member = Kind(rawValue: field.number) else { continue }
            if member != kind {
                kind = member
                keys = []
            }
            try mergeMember(operation.nested(field))
        }
    }

    private mutating func mergeMember(_ member: WireCursor) throws(WireError) {
        var fields = member
        while let f = try fields.next() {
            guard f.number == 1, f.wireType == .lengthDelimited else { continue }
            switch kind {
            case .set?, .getWithDefault?:
                // KeyValue { key = 1; value = 2 }: a repeated key inside one pair keeps its last value.
                var pair = member.nested(f)
                var key: String?
                while let p = try pair.next() {
                    if p.number == 1 && p.wireType == .lengthDelimited { key = member.string(p) }
                }
                keys.append(key ?? "")
            case .get?, .getOption?, .unset?, .isModifiable?:
                keys.append(member.string(f))
            case .getAll?, nil:
                break
            }
        }
    }
}
