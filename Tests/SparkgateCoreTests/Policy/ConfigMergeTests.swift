import Foundation
import SparkgateCore
import SparkgateTestSupport
import Testing

/// `ConfigRequest` read exactly as protobuf merges repeated fields. The wire-level reading is checked against a
/// reference model of protobuf's rules (the same oneof member merges, another replaces it; repeated fields
/// concatenate; a repeated scalar keeps its last value). The integration suite checks the same against
/// protobuf's own Python parser through a running gateway.
@Suite("Config requests as protobuf merges them")
struct ConfigMergeTests {
    enum Member: Int, CaseIterable { case set = 1, get, getWithDefault, getOption, getAll, unset, isModifiable }

    /// One occurrence of a oneof member: its keys (pair keys for set/get_with_default, each pair possibly
    /// carrying its key field twice).
    struct Occurrence {
        var member: Member
        var keys: [[String]]
    }

    static func encode(_ operations: [[Occurrence]]) -> [UInt8] {
        var request: [UInt8] = []
        WireEncoding.appendString(field: 1, "00000000-0000-4000-8000-000000000001", to: &request)
        for operation in operations {
            var op: [UInt8] = []
            for occurrence in operation {
                var body: [UInt8] = []
                for key in occurrence.keys {
                    switch occurrence.member {
                    case .set, .getWithDefault:
                        var pair: [UInt8] = []
                        for k in key { WireEncoding.appendString(field: 1, k, to: &pair) }
                        WireEncoding.appendString(field: 2, "v", to: &pair)
                        WireEncoding.appendLengthDelimited(field: 1, pair, to: &body)
                    case .getAll:
                        WireEncoding.appendString(field: 1, key.first ?? "", to: &body)  // prefix
                    default:
                        WireEncoding.appendString(field: 1, key.first ?? "", to: &body)
                    }
                }
                WireEncoding.appendLengthDelimited(field: occurrence.member.rawValue, body, to: &op)
            }
            WireEncoding.appendLengthDelimited(field: 3, op, to: &request)
        }
        return request
    }

    /// Protobuf's merge, applied in wire order.
    static func reference(_ operations: [[Occurrence]]) -> (ConfigOperation.Kind?, [String]) {
        var member: Member?
        var keys: [String] = []
        for occurrence in operations.joined() {
            if occurrence.member != member {
                member = occurrence.member
                keys = []
            }
            switch occurrence.member {
            // a repeated key field keeps its last
            case .set, .getWithDefault: keys += occurrence.keys.map { $0.last ?? "" }
            case .getAll: break
            default: keys += occurrence.keys.map { $0.first ?? "" }
            }
        }
        return (member.flatMap { ConfigOperation.Kind(rawValue: $0.rawValue) }, keys)
    }

    @Test("a denied key hidden in a second operation or a second set is seen")
    func hiddenKeys() throws {
        let twoOperations = Self.encode([
            [Occurrence(member: .set, keys: [["spark.secret.key"]])], [Occurrence(member: .set, keys: [["ok"]])],
        ])
        let op = try twoOperations.withUnsafeBytes { try RequestEnvelope.read($0, method: .config) }.config
        #expect(op?.kind == .set && op?.keys == ["spark.secret.key", "ok"])
        let twoSets = Self.encode([
            [Occurrence(member: .set, keys: [["ok"]]), Occurrence(member: .set, keys: [["spark.secret.key"]])]
        ])
        #expect(
            try twoSets.withUnsafeBytes { try RequestEnvelope.read($0, method: .config) }.config?.keys == [
                "ok", "spark.secret.key",
            ])
        // A set replaced by a get is a read, as Spark will run it.
        let replaced = Self.encode([
            [Occurrence(member: .set, keys: [["spark.secret.key"]])], [Occurrence(member: .get, keys: [["a"]])],
        ])
        let read = try replaced.withUnsafeBytes { try RequestEnvelope.read($0, method: .config) }.config
        #expect(read?.kind == .get && read?.keys == ["a"] && read?.writes == false)
    }

    @Test("random requests with repeated operations, members and keys read as protobuf's merge reads them")
    func randomized() throws {
        let seed =
            ProcessInfo.processInfo.environment["SPARKGATE_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        print("ConfigMergeTests.randomized seed \(seed)")
        var rng = SplitMix64(seed: seed)
        for round in 0..<5000 {
            var operations: [[Occurrence]] = []
            for _ in 0..<Int(rng.next() % 3 + 1) {
                var op: [Occurrence] = []
                for _ in 0..<Int(rng.next() % 3 + 1) {
                    let member = Member.allCases[Int(rng.next() % 7)]
                    let keys = (0..<Int(rng.next() % 3)).map { _ in
                        (0..<Int(rng.next() % 2 + 1)).map { _ in "k\(rng.next() % 10)" }
                    }
                    op.append(Occurrence(member: member, keys: keys))
                }
                operations.append(op)
            }
            let bytes = Self.encode(operations)
            let read = try bytes.withUnsafeBytes { try RequestEnvelope.read($0, method: .config) }.config
            let (kind, keys) = Self.reference(operations)
            #expect(read?.kind == kind && read?.keys == keys, "round \(round), seed \(seed)")
        }
    }
}

@Suite("SQL configuration statements")
struct SQLConfigScanTests {
    func scan(_ sql: String) -> [SQLConfigStatement] { SQLConfigScan.statements(in: Array(sql.utf8)) }

    @Test("SET and RESET are read as Spark's grammar reads them")
    func forms() {
        #expect(scan("SET spark.sql.optimizer.excludedRules=x") == [.set(key: "spark.sql.optimizer.excludedRules")])
        #expect(scan("  set   a.b = 1 ;") == [.set(key: "a.b")])
        #expect(scan("SET `spark.x`=1") == [.set(key: "spark.x")])
        #expect(scan("SET spark.x") == [.set(key: "spark.x")])
        #expect(scan("RESET spark.x") == [.reset(key: "spark.x")])
        #expect(scan("SET") == [] && scan("SET -v") == [] && scan("RESET") == [])
        #expect(scan("SET TIME ZONE 'UTC'") == [.set(key: "spark.sql.session.timeZone")])
        #expect(scan("SET VAR v = 1") == [])
        #expect(scan("SET a.b='quoted value'") == [.set(key: "a.b")])
    }

    @Test(
        "statements after ';', comments and SQL-scripting keywords are found; strings and identifiers are not statements"
    )
    func positions() {
        #expect(scan("-- c\n/* x /* nested */ */ SET a=1") == [.set(key: "a")])
        #expect(scan("SELECT 1; SET b=2") == [.set(key: "b")])
        #expect(scan("BEGIN SET c=3; END") == [.set(key: "c")])
        #expect(scan("SELECT 'SET d=4'") == [])
        #expect(scan("SELECT `SET` FROM t") == [])
        #expect(scan("UPDATE t SET token = 1") == [])
        #expect(scan("EXECUTE IMMEDIATE 'SET e=5'") == [.executeImmediate])
    }

    @Test("what Spark might read differently is reported unreadable, never guessed")
    func unreadable() {
        for sql in ["SET /* c */ a=1", "SET a -- c\n=1", "SET 'a'=1", "SET a b=1", "SET a-b=1", "RESET a b"] {
            guard case .unreadable? = scan(sql).first else {
                Issue.record("\(sql) read as \(scan(sql))")
                continue
            }
        }
    }

    @Test("random bytes never trap the scanner")
    func randomBytes() {
        var rng = SplitMix64(seed: 99)
        for _ in 0..<20_000 {
            let bytes = (0..<Int(rng.next() % 64)).map { _ in
                [
                    UInt8(ascii: "S"), UInt8(ascii: "E"), UInt8(ascii: "T"), 0x20, 0x3D, 0x27, 0x60, 0x2D, 0x2F, 0x2A,
                    0x3B, UInt8(rng.next() & 0xFF),
                ][Int(rng.next() % 12)]
            }
            _ = SQLConfigScan.statements(in: bytes)
        }
    }
}

@Suite("Plan inspection")
struct PlanInspectionTests {
    /// ExecutePlanRequest { plan = 3: Plan { root = 1: Relation { project = 3: Project { input = 1: Relation { sql = 10: SQL { query = 1 } } } } } }
    func nestedSQL(_ query: String, depth: Int = 1) -> [UInt8] {
        var relation: [UInt8] = []
        var sql: [UInt8] = []
        WireEncoding.appendString(field: 1, query, to: &sql)
        WireEncoding.appendLengthDelimited(field: 10, sql, to: &relation)
        for _ in 0..<depth {
            var project: [UInt8] = []
            WireEncoding.appendLengthDelimited(field: 1, relation, to: &project)
            relation = []
            WireEncoding.appendLengthDelimited(field: 3, project, to: &relation)
        }
        var plan: [UInt8] = []
        WireEncoding.appendLengthDelimited(field: 1, relation, to: &plan)
        var request: [UInt8] = []
        WireEncoding.appendString(field: 1, "00000000-0000-4000-8000-000000000001", to: &request)
        WireEncoding.appendLengthDelimited(field: 3, plan, to: &request)
        return request
    }

    @Test("SQL nested anywhere in the plan is found, hundreds of relations deep")
    func nested() {
        for depth in [0, 1, 300] {
            let result = nestedSQL("SET spark.sql.optimizer.excludedRules=x", depth: depth).withUnsafeBytes {
                PlanInspection.inspect($0, method: .executePlan)
            }
            #expect(result.statements.contains(.set(key: "spark.sql.optimizer.excludedRules")), "depth \(depth)")
            #expect(!result.exhausted && !result.compressed)
        }
    }

    @Test(
        "the decision refuses a denied SET, EXECUTE IMMEDIATE, an unreadable SET and a compressed plan; allows the rest"
    )
    func decision() {
        let policy = ConfigPolicy(denyKeys: ConfigPolicy.defaultDenyKeys)
        func refusal(_ sql: String) -> CallRefusal? {
            let inspection = nestedSQL(sql).withUnsafeBytes { PlanInspection.inspect($0, method: .executePlan) }
            return FirstMessageDecision.refusal(for: inspection, policy)
        }
        #expect(refusal("SET spark.sql.optimizer.excludedRules=a")?.error.code == .permissionDenied)
        #expect(refusal("select 1; RESET spark.jars")?.error.code == .permissionDenied)
        #expect(refusal("EXECUTE IMMEDIATE 'SET x=1'")?.error.code == .permissionDenied)
        #expect(refusal("SET /* hidden */ spark.plugins=a")?.error.code == .invalidArgument)
        #expect(refusal("SET spark.sql.shuffle.partitions=4") == nil)
        #expect(refusal("SELECT 'SET spark.jars=1' AS text") == nil)
        #expect(
            FirstMessageDecision.refusal(
                for: nestedSQL("SET spark.jars=1").withUnsafeBytes { PlanInspection.inspect($0, method: .executePlan) },
                ConfigPolicy(denyKeys: [])) == nil)
        var compressed: [UInt8] = []
        var plan: [UInt8] = []
        WireEncoding.appendLengthDelimited(field: 3, [0x0A, 0x01, 0x00], to: &plan)
        WireEncoding.appendLengthDelimited(field: 3, plan, to: &compressed)
        let inspection = compressed.withUnsafeBytes { PlanInspection.inspect($0, method: .executePlan) }
        #expect(inspection.compressed)
        #expect(FirstMessageDecision.refusal(for: inspection, policy)?.error.code == .invalidArgument)
    }
}
