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

    static var example: String {
        guard let start = reference.range(of: "```yaml\n"),
            let end = reference.range(of: "```", range: start.upperBound..<reference.endIndex)
        else { return "" }
        return String(reference[start.upperBound..<end.lowerBound])
    }

    /// Every table row of the page, as written.
    static var documentedRows: [String] {
        reference.split(separator: "\n").filter { $0.hasPrefix("| `") }.map(String.init)
    }

    @Test("the page's tables are ConfigurationKeys rendered: same keys, order, types, defaults, reload and words")
    func tablesAreTheKeyTable() {
        let rendered = ConfigurationKeys.all.map(\.markdownRow)
        let documented = Self.documentedRows
        for (index, row) in rendered.enumerated() where index >= documented.count || documented[index] != row {
            Issue.record(
                "docs/configuration.md differs from ConfigurationKeys at row \(index + 1): expected \(row), found \(index < documented.count ? documented[index] : "nothing"); `sparkgate config keys` prints the tables"
            )
            break
        }
        #expect(documented.count == rendered.count)
        for section in ConfigurationKeys.sections {
            #expect(Self.reference.contains("## \(section.title)\n"), "no section '\(section.title)' on the page")
            #expect(Self.reference.contains(ConfigurationKeys.markdown(section)), "section '\(section.title)' differs")
        }
    }

    @Test("a reload compares every restart key, and only those")
    func restartKeysAreCompared() {
        let restart = Set(ConfigurationKeys.restartOnly)
        let compared = RestartOnlyKeys.compared
        #expect(Set(compared).isSubset(of: restart), "compared but not restart: \(Set(compared).subtracting(restart))")
        // A section compared whole stands for its keys; a section itself is covered when everything inside is.
        func covered(_ key: String) -> Bool {
            if compared.contains(where: { key == $0 || key.hasPrefix($0 + ".") }) { return true }
            let inside = restart.filter { $0.hasPrefix(key + ".") && !$0.dropFirst(key.count + 1).contains(".") }
            return !inside.isEmpty && inside.allSatisfy(covered)
        }
        let missed = restart.filter { !covered($0) }.sorted()
        #expect(missed == [], "restart keys never compared on reload")
    }

    @Test("every key the model accepts is documented, and every documented key exists")
    func keysMatch() {
        #expect(!Self.reference.isEmpty, "docs/configuration.md is missing")
        let (accepted, issues) = SparkgateConfig.acceptedKeys(reachedBy: Self.example)
        #expect(issues.isEmpty, "the reference example is not a valid configuration: \(issues)")
        // Team quotas take the same keys as the defaults, documented once.
        let model = Set(accepted.map { $0.replacingOccurrences(of: "teams.<name>.quotas.", with: "defaults.quotas.") })
        // Sections themselves are rows too; the model records only the keys inside mappings.
        let names = ConfigurationKeys.all.map(\.name)
        let documented = Set(names)
        #expect(names.count == documented.count, "a key is in the table twice")
        let sections = documented.filter { key in documented.contains { $0.hasPrefix(key + ".") } }
        #expect(
            model.subtracting(documented).sorted() == [], "accepted by the model, missing from ConfigurationKeys")
        #expect(
            documented.subtracting(model).subtracting(sections).sorted() == [],
            "documented, but the model has no such key")
    }
}
