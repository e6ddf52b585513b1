"""The docs match the code: the README's target table names the targets Package.swift builds, every relative
link in the docs leads to a file that exists, and no doc cites an issue number a reader cannot look up."""
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
