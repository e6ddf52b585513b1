"""The docs match the code: the README's target table names the targets Package.swift builds, every relative
link in the docs leads to a file that exists, every test the docs cite as evidence exists, and no doc cites an
issue number a reader cannot look up."""
import os
import re

import harness

ROOT = harness.ROOT
DOCS = [os.path.join(ROOT, p) for p in ("README.md", "SECURITY.md", "BENCHMARKS.md", "docker/README.md")] + [
    os.path.join(ROOT, "docs", f) for f in sorted(os.listdir(os.path.join(ROOT, "docs"))) if f.endswith(".md")
] + [os.path.join(ROOT, "Sources", "SparkgateServer", "Documentation.docc", "Design.md")]


def test_the_readme_target_table_names_every_target_package_swift_builds():
    package = open(os.path.join(ROOT, "Package.swift")).read()
    built = set(re.findall(r'\.(?:target|executableTarget)\(\s*name: "(\w+)"', package))
    built -= {"SyntheticSparkConnect", "AuthCost", "AllocationBudget", "MinimalForwarder", "SparkgateTestSupport"}  # benchmarks and test support
    built = {t for t in built if not t.startswith("Fuzz")}  # libFuzzer targets, built by scripts/fuzz only
    readme = open(os.path.join(ROOT, "README.md")).read()
    table = readme[readme.index("| target | owns | depends on |"):]
    table = table[:table.index("\n\n")]
    listed = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
    assert listed == built, f"README lists {sorted(listed - built)} too many, {sorted(built - listed)} missing"


def test_relative_links_in_the_docs_lead_somewhere():
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", open(doc).read()):
            if "://" in target:
                continue
            if not os.path.exists(os.path.normpath(os.path.join(os.path.dirname(doc), target))):
                broken.append(f"{os.path.relpath(doc, ROOT)} -> {target}")
    assert broken == []


def test_no_doc_cites_an_issue_number():
    cited = []
    for doc in DOCS:
        for n, line in enumerate(open(doc), 1):
            if re.search(r"(?:\(#\d+\)|\bissues? #?\d+\b|#\d+\b(?!\]))", line) and "://" not in line:
                cited.append(f"{os.path.relpath(doc, ROOT)}:{n}: {line.strip()[:100]}")
    assert cited == []


def test_every_test_the_docs_cite_exists():
    """SECURITY.md's threat table and the other docs name tests as evidence (`test_x.py::test_y`, `SuiteTests` or
    `SuiteTests.method`): a renamed or moved test must take its citations along."""
    python = {}
    for f in os.listdir(os.path.join(ROOT, "Tests", "integration")):
        if f.startswith("test_") and f.endswith(".py"):
            source = open(os.path.join(ROOT, "Tests", "integration", f)).read()
            python[f] = set(re.findall(r"^def (test_\w+)", source, re.M))
    swift = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "Tests")):
        for f in files:
            if f.endswith(".swift"):
                source = open(os.path.join(folder, f)).read()
                for suite in re.findall(r"^(?:final class|struct|class|enum|extension) (\w+Tests)\b", source, re.M):
                    swift.setdefault(suite, set()).update(re.findall(r"func (\w+)\(", source))
    targets = set(re.findall(r'\.testTarget\(\s*name: "(\w+)"', open(os.path.join(ROOT, "Package.swift")).read()))
    missing = []
    for doc in DOCS:
        text = open(doc).read()
        for file, name in re.findall(r"(test_\w+\.py)::(\w+)", text):
            if name not in python.get(file, set()):
                missing.append(f"{os.path.relpath(doc, ROOT)}: {file}::{name}")
        for suite, method in re.findall(r"`([A-Z]\w+Tests)(?:\.(\w+))?`", text):
            if suite in targets and not method:
                continue
            if suite not in swift or (method and method not in swift[suite]):
                missing.append(f"{os.path.relpath(doc, ROOT)}: {suite}{'.' + method if method else ''}")
    assert missing == [], missing
