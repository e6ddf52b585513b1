"""What one unary call costs a proxy, counted rather than timed: CPU, syscalls by kind, context switches (each
one a thread that blocked and had to be woken) and heap allocations, for the same calls through every proxy.

Counts come from the kernel and libc, not from the proxies: `perf stat` on the proxy's processes (task clock,
context switches, every syscall entry, and uprobes on libc's allocation functions) and `perf trace -s` for
syscalls by kind. Both attach to the processes already running, so a proxy is measured as it serves.
"""
import os
import re
import signal
import subprocess
import time

ALLOCATORS = ["malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc"]


def process_tree(pids):
    """Every process in `pids` and their descendants (nginx and HAProxy serve from worker processes)."""
    seen, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return seen


def libc_of(pid):
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            path = line.split()[-1]
            if re.search(r"/libc\.so\.6$|/libc-[\d.]+\.so$", path):
                return path
    return None


def ensure_probes(libc):
    """uprobes on libc's allocation entry points, named probe_libc:<function>; false when the kernel has none."""
    listed = subprocess.run(["perf", "probe", "-l"], capture_output=True, text=True).stdout
    for fn in ALLOCATORS:
        if f"probe_libc:{fn} " not in listed and f"probe_libc:{fn}\n" not in listed:
            if subprocess.run(["perf", "probe", "-q", "-x", libc, "--add", fn], capture_output=True).returncode != 0:
                return False
    return True


def perf_stat(pids, run, with_allocations):
    events = ["task-clock", "context-switches", "cpu-migrations", "raw_syscalls:sys_enter"]
    if with_allocations:
        events += [f"probe_libc:{fn}" for fn in ALLOCATORS]
    perf = subprocess.Popen(["perf", "stat", "-x", ",", "-e", ",".join(events), "-p", ",".join(map(str, pids))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # attached before the first call
    out = run()
    perf.send_signal(signal.SIGINT)
    _, err = perf.communicate(timeout=60)
    counts = {}
    for line in err.splitlines():
        fields = line.split(",")
        if len(fields) > 2:
            try:
                counts[fields[2]] = float(fields[0])
            except ValueError:
                counts[fields[2]] = None  # <not supported> / <not counted>
    return out, counts


def perf_trace(pids, run):
    """Syscalls by name over every thread of `pids` while `run` runs."""
    trace = subprocess.Popen(["perf", "trace", "-s", "-p", ",".join(map(str, pids))], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    out = run()
    trace.send_signal(signal.SIGINT)
    _, err = trace.communicate(timeout=120)
    by_name = {}
    for line in err.splitlines():
        m = re.match(r"\s+([a-z_0-9]+)\s+(\d+)\s+\d+\s+[\d.]+", line)
        if m and m.group(1) != "syscall":
            by_name[m.group(1)] = by_name.get(m.group(1), 0) + int(m.group(2))
    return out, by_name


def account(pids, run, calls_of):
    """Per-call counts for the proxy processes `pids` over the calls `run()` makes (`calls_of(out)` of them)."""
    tree = process_tree(pids)
    libc = libc_of(tree[-1]) or libc_of(tree[0])
    probes = bool(libc) and ensure_probes(libc)
    out, counts = perf_stat(tree, run, probes)
    calls = max(1, calls_of(out))
    per = lambda key: None if counts.get(key) is None else counts[key] / calls
    result = {
        "calls": calls,
        "cpu_us": None if counts.get("task-clock") is None else counts["task-clock"] * 1e3 / calls,  # task-clock is in ms
        "syscalls": per("raw_syscalls:sys_enter"),
        "context_switches": per("context-switches"),
        "migrations": per("cpu-migrations"),
        "allocations": sum(per(f"probe_libc:{fn}") or 0 for fn in ALLOCATORS) if probes else None,
    }
    out2, by_name = perf_trace(tree, run)
    calls2 = max(1, calls_of(out2))
    result["syscalls_by_kind"] = {k: v / calls2 for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])}
    return result


def render(accounts):
    """`accounts`: {workload: {path: result}} as a Markdown table per workload."""
    lines = []
    for workload, paths in accounts.items():
        names = list(paths)
        lines.append(f"Per call, {workload} (perf on the proxy's processes):")
        lines.append("| per call | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(names))
        f = lambda v, d=1: "—" if v is None else f"{v:,.{d}f}"
        for label, key, d in (("CPU µs", "cpu_us", 1), ("syscalls", "syscalls", 2), ("context switches", "context_switches", 2),
                              ("heap allocations", "allocations", 1)):
            lines.append(f"| {label} | " + " | ".join(f(paths[n].get(key), d) for n in names) + " |")
        kinds = []
        for n in names:
            kinds += [k for k in paths[n].get("syscalls_by_kind", {}) if k not in kinds]
        for kind in kinds[:10]:
            lines.append(f"| &nbsp; {kind} | " + " | ".join(f(paths[n].get("syscalls_by_kind", {}).get(kind, 0.0), 2) for n in names) + " |")
        lines.append("")
    return "\n".join(lines)
