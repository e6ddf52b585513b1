import Foundation
import SparkgateCore
import Testing

/// docs/configuration.md against the configuration model: the keys its tables list are exactly the keys the
/// model accepts, and its example of every section is a valid configuration.
@Suite("Configuration reference")
struct ConfigurationReferenceTests {
    static let reference: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("docs/configuration.md"), encoding: .utf8)) ?? ""
    }()

    /// The first column of every table row: `| \`key.path\` | ...`.
    static var documentedKeys: [String] {
        reference.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("| `"), let end = line.dropFirst(3).firstIndex(of: "`") else { return nil }
            return String(line[line.index(line.startIndex, offsetBy: 3)..<end])
        }
    }

    static var example: String {
        guard let start = reference.range(of: "```yaml\n"),
            let end = reference.range(of: "```", range: start.upperBound..<reference.endIndex)
        else { return "" }
        return String(reference[start.upperBound..<end.lowerBound])
    }

    @Test("every key the model accepts is documented, and every documented key exists")
    func keysMatch() {
        #expect(!Self.reference.isEmpty, "docs/configuration.md is missing")
        let (accepted, issues) = SparkgateConfig.acceptedKeys(reachedBy: Self.example)
        #expect(issues.isEmpty, "the reference example is not a valid configuration: \(issues)")
        // Team quotas take the same keys as the defaults, documented once.
        let model = Set(accepted.map { $0.replacingOccurrences(of: "teams.<name>.quotas.", with: "defaults.quotas.") })
        // Sections themselves are documented as rows too; the model records only the keys inside mappings.
        let documented = Set(Self.documentedKeys)
        #expect(Self.documentedKeys.count == documented.count, "a key is documented twice")
        let sections = documented.filter { key in documented.contains { $0.hasPrefix(key + ".") } }
        #expect(
            model.subtracting(documented).sorted() == [], "accepted by the model, missing from docs/configuration.md")
        #expect(
            documented.subtracting(model).subtracting(sections).sorted() == [],
            "documented, but the model has no such key")
    }
}
