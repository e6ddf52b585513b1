"""Who asked for the CPU: each `perf record -g` sample charged to the code that caused it, not to the frame
it was taken in.

Self time puts retain/release, malloc and memmove in the Swift runtime and libc, where no change can be made.
Here a sample goes to the innermost frame of its stack that belongs to a named module (a Sparkgate target,
a SwiftNIO module, libnghttp2, BoringSSL); a sample taken in the kernel goes to the kernel. So the runtime
work a type's copies and releases cause is charged to the Sparkgate function that made them.

Frame pointers can skip a leaf's direct caller (the runtime's entry points set up no frame): a sample then
lands one frame further out, in the same module as a rule. Samples with no named frame at all are counted
as unattributed.
"""
import collections
import re
import subprocess

SWIFT_SYMBOL = re.compile(r"\$s(\d+)([A-Za-z_][A-Za-z0-9_]*)")
FRAME = re.compile(r"\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$")


def module_of(symbol, dso):
    """The module a frame belongs to, or None for the runtime, libc and the standard library."""
    if dso == "[kernel.kallsyms]":
        return "kernel"
    if "libnghttp2" in dso:
        return "libnghttp2"
    if "BoringSSL" in symbol or symbol.startswith("bssl::"):
        return "BoringSSL"
    m = SWIFT_SYMBOL.match(symbol)
    if not m:
        return None
    return m.group(2)[: int(m.group(1))]  # `$ss…` and `$sS…` (the standard library) do not match


def samples(data):
    """Each sample's stack in a `perf record -g` file, innermost frame first, as (symbol, dso) pairs."""
    text = subprocess.run(["perf", "script", "-i", data, "-F", "comm,ip,sym,dso"],
                          capture_output=True, text=True).stdout
    return parse(text)


def parse(text):
    """The stacks of `perf script -F comm,ip,sym,dso` output: a line naming the thread, then one per frame."""
    stack = None
    for line in text.splitlines():
        if not line.strip():
            if stack:
                yield stack
            stack = None
            continue
        m = FRAME.match(line)
        if m and stack is not None:
            stack.append((m.group(1), m.group(2)))
        else:
            stack = []
    if stack:
        yield stack


def attribute(stacks):
    """(share by module, share by Sparkgate function), each a list of (fraction, name), largest first."""
    modules, functions = collections.Counter(), collections.Counter()
    total = 0
    for stack in stacks:
        total += 1
        for symbol, dso in stack:
            module = module_of(symbol, dso)
            if module is None:
                continue
            modules[module] += 1
            if module.startswith("Sparkgate"):
                functions[symbol] += 1
            break
        else:
            modules["unattributed"] += 1
    if not total:
        return [], []
    share = lambda counter: [(n / total, name) for name, n in counter.most_common()]
    return share(modules), share(functions)


def report(data, per_unit, unit, top):
    """Lines for the profile's text summary: modules, then the Sparkgate functions that cost the most."""
    modules, functions = attribute(samples(data))
    lines = ["", "charged to the innermost named module (the runtime's work to the code that caused it)",
             f"{'share':>7}  {unit:>8}  module"]
    lines += [f"{f * 100:6.2f}%  {f * per_unit:8.2f}  {name}" for f, name in modules]
    names = [name for _, name in functions[:top]]
    demangled = subprocess.run(["swift", "demangle", "--simplified"], input="\n".join(names),
                               capture_output=True, text=True).stdout.splitlines()
    lines += ["", f"{'share':>7}  {unit:>8}  Sparkgate function (with the runtime work it caused)"]
    for (f, _), name in zip(functions[:top], demangled or names):
        lines.append(f"{f * 100:6.2f}%  {f * per_unit:8.2f}  {name[:170]}")
    return lines
