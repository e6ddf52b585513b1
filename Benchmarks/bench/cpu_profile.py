"""Where Sparkgate's CPU goes per call: runs one binary against the synthetic backend, drives a fixed number
of calls with h2load while `perf record` samples it (the cpu-clock software event, which works where hardware
counters do not), and prints the CPU per call measured from /proc and the symbols that take it, scaled to
microseconds per call, then the same samples charged to the code that caused them (`attribution.py`: the
runtime's retain/release and malloc go to the Sparkgate or NIO function that called them). Run it on two
builds to see what a change costs.

    .venv/bin/python Benchmarks/bench/cpu_profile.py --bin .build/release/sparkgate \\
        --synthetic-bin .build/release/SyntheticSparkConnect --workload unary --calls 20000
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import uuid

import attribution
import peers
from bench import grpc_body, h2load


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--synthetic-bin", required=True)
    ap.add_argument("--workload", choices=["unary", "unary32", "unary64", "stream"], default="unary")
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--stream-bytes", type=int, default=2 << 30)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--threads", type=int, default=None, help="event loops (sparkgate serve --threads)")
    ap.add_argument("--target", choices=["sparkgate", "floor", "nginx", "haproxy"], default="sparkgate",
                    help="what to profile: Sparkgate (--bin), the minimal forwarder (--floor-bin), nginx or HAProxy")
    ap.add_argument("--floor-bin", default=None)
    ap.add_argument("--out", default=None, help="also write the report to this file")
    ap.add_argument("--perf-data", default=None, help="keep perf's samples here (for perf report --sort comm, or callers)")
    ap.add_argument("--event", default="cpu-clock", help="perf event to sample (probe_libc:malloc counts allocation sites, once `perf probe -x libc.so.6 malloc` made it)")
    ap.add_argument("--cpu-only", action="store_true", help="measure CPU per call without perf (perf's sampling adds its own cost)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="sparkgate-profile-")
    sg = lambda *a: subprocess.run([args.bin, *a], capture_output=True, text=True, check=True).stdout.strip()
    material = peers.material(work, args.bin)
    synthetic = peers.synthetic_server(work, args.synthetic_bin)
    data = args.perf_data or os.path.join(work, "perf.data")
    gate = None
    try:
        extra = ["--threads", str(args.threads)] if args.threads else []
        issuer = peers.sparkgate(work, args.bin, material, 1, synthetic.port, name="issuer")
        token = sg("token", "issue", "--config", issuer.config, "--user", "bench", "--team", "bench-synthetic", "--kid", "bench-es256", "--ttl", "1h")
        issuer.close()
        if args.target == "sparkgate":
            gate = peers.sparkgate(work, args.bin, material, 1, synthetic.port, name="profiled", extra_args=extra)
            port, pids = gate.port, [gate.pid]
        elif args.target == "floor":
            gate = peers.floor(work, args.floor_bin, material, 1, synthetic.port, threads=args.threads)
            port, pids, token = gate.ports["synthetic"], [gate.pid], None
        else:
            import percall
            gate = (peers.nginx if args.target == "nginx" else peers.haproxy)(work, material, 1, synthetic.port)
            port, pids = gate.ports["synthetic"], percall.process_tree([gate.pid])
            if args.target == "nginx":
                token = None
        from pyspark.sql.connect.proto import base_pb2 as pb
        session = str(uuid.uuid4())
        config_req = pb.ConfigRequest(session_id=session, client_type="h2load")
        config_req.user_context.user_id = "bench"
        config_req.operation.get.keys.append("spark.sql.shuffle.partitions")
        exec_req = pb.ExecutePlanRequest(session_id=session, client_type="h2load")
        exec_req.user_context.user_id = "bench"
        exec_req.plan.root.range.end = 10
        config_body = grpc_body(os.path.join(work, "config.bin"), config_req)
        exec_body = grpc_body(os.path.join(work, "exec.bin"), exec_req)
        url = lambda method: f"https://localhost:{port}/spark.connect.SparkConnectService/{method}"
        # Warm up (connections, caches, the token) before measuring.
        h2load(url("Config"), config_body, token, 500, 1, 1)
        perf = None if args.cpu_only else subprocess.Popen(["perf", "record", "-e", args.event, *(["-F", "4999"] if args.event == "cpu-clock" else []), "-g", "-o", data, "-p", ",".join(map(str, pids))],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu0 = peers.cpu_ns(pids)
        if args.workload == "unary":
            result = h2load(url("Config"), config_body, token, args.calls, 1, 1)
        elif args.workload in ("unary32", "unary64"):
            result = h2load(url("Config"), config_body, token, args.calls, 1, int(args.workload[5:]))
        else:
            result = h2load(url("ExecutePlan"), exec_body, token, 1, 1, 1, [f"x-synthetic-bytes: {args.stream_bytes}"])
        cpu = (peers.cpu_ns(pids) - cpu0) / 1e3
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
    finally:
        if gate:
            gate.close()
        synthetic.close()
    units = args.calls if args.workload != "stream" else args.stream_bytes / 2**30
    unit = "call" if args.workload != "stream" else "GiB"
    scale = 1 if unit == "call" else 1e-6
    lines = [f"{args.target} ({args.workload}, {args.calls if unit == 'call' else args.stream_bytes >> 30} {unit}s): {cpu / units * scale:,.2f} "
             f"{'us' if unit == 'call' else 's'} CPU per {unit}; h2load {result.get('succeeded')} of {result.get('total')} succeeded, "
             f"{result.get('req_per_s', 0):,.0f} req/s", f"{'self %':>7}  {'us/' + unit if unit == 'call' else 's/GiB':>8}  symbol"]
    if args.cpu_only:
        print(lines[0])
        return
    report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "symbol", "-g", "none", "--percent-limit", "0.3"],
                            capture_output=True, text=True).stdout
    demangled = subprocess.run(["swift", "demangle", "--simplified"], input=report, capture_output=True, text=True).stdout
    shown = 0
    for line in demangled.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[.\]\s+(.*)", line) or re.match(r"\s*([\d.]+)%\s+\[k\]\s+(.*)", line)
        if not m:
            continue
        share = float(m.group(1))
        lines.append(f"{share:6.2f}%  {share / 100 * cpu / units * scale:8.2f}  {m.group(2)[:170].rstrip()}")
        shown += 1
        if shown >= args.top:
            break
    if args.target in ("sparkgate", "floor"):  # Swift modules to charge; nginx and HAProxy have none
        lines += attribution.report(data, cpu / units * scale, "us/" + unit if unit == "call" else "s/GiB", args.top)
    print("\n".join(lines))
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
