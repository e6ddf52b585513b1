"""Sparkgate against direct access, HAProxy, nginx and spark-connect-proxy, on the same work in one run.

Every workload runs on every path in interleaved rounds (A B C D E A B C D E ...) so machine drift cancels;
the table reports medians and ratios against the peers measured in the same run. Run through scripts/bench.
"""
import argparse
import datetime
import json
import os
import shutil
import signal
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import peers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

FULL = dict(rounds=3, arrow_rows=20_000_000, conf_calls=1000, upload_mb=64, h2_config_calls=30_000, unary_calls_1=5_000,
            unary_calls_64=60_000, stream_bytes=4 << 30, concurrent_streams=1000, concurrent_stream_bytes=1 << 20,
            idle_sessions=10_000, timeout=600, percall_calls_1=5_000, percall_calls_32=30_000, loop_calls=60_000)
SMOKE = dict(rounds=1, arrow_rows=200_000, conf_calls=20, upload_mb=4, h2_config_calls=500, unary_calls_1=200, unary_calls_64=2_000,
             stream_bytes=64 << 20, concurrent_streams=100, concurrent_stream_bytes=64 << 10, idle_sessions=200, timeout=120,
             percall_calls_1=200, percall_calls_32=1_000, loop_calls=2_000,
             # A smoke run checks that nothing rotted, not how fast: every path runs the PySpark conf workload and
             # every synthetic one, but the slow PySpark arrow and upload runs go through direct and Sparkgate
             # only, and the loops through two shapes.
             only_via={"arrow": ["direct", "sparkgate"], "upload": ["direct", "sparkgate"]}, loop_shapes=2)


WORKLOADS = ["arrow", "conf", "upload", "config_h2load_1", "config_h2load_32", "synthetic_unary_1", "synthetic_unary_64", "synthetic_stream",
             "concurrent_streams", "namespacing", "idle_sessions", "percall", "loops"]
# Streams per connection and connections for "loops": the same streams over one connection (one event loop)
# and over two (both of a 2-core machine's loops).
LOOP_SHAPES = [(1, 32), (2, 16), (1, 64), (2, 32)]


def log(*args):
    print(*args, file=sys.stderr, flush=True)


class Path:
    """One way to reach a backend: direct, or through a proxy."""

    def __init__(self, name, pids, spark_target, synthetic_target, tls, token, synthetic_token=None, call_scale=1.0, only=None):
        self.name, self.pids, self.tls = name, pids, tls
        # The workloads this path runs (None: all of them).
        self.only = only
        # Rates are per second, so a much slower peer runs fewer calls, keeping the run under 20 minutes.
        self.call_scale = call_scale
        self.spark_target, self.synthetic_target = spark_target, synthetic_target
        self.token, self.synthetic_token = token, synthetic_token or token

    def spark_url(self):
        parts = [f"sc://localhost:{self.spark_target}/"]
        if self.tls:
            parts.append("use_ssl=true")
        if self.token:
            parts.append(f"token={self.token}")
        return ";".join(parts)

    def h2_url(self, port, method):
        return f"{'https' if self.tls else 'http'}://localhost:{port}/spark.connect.SparkConnectService/{method}"

    def cpu(self):
        return peers.cpu_ns(self.pids) if self.pids else 0


def h2load(url, body, token, n, c, m, extra_headers=(), timeout=600):
    args = ["h2load", "-n", str(n), "-c", str(c), "-m", str(m), "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers"]
    if token:
        args += ["-H", f"authorization: Bearer {token}"]
    for h in extra_headers:
        args += ["-H", h]
    args.append(url)
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout).stdout
    result = {"raw": out.strip().splitlines()[-12:]}
    if (m1 := re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)):
        result["seconds"] = float(m1.group(1)) / (1000 if m1.group(2) == "ms" else 1)
        result["req_per_s"] = float(m1.group(3))
    if (m2 := re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)):
        result.update(total=int(m2.group(1)), succeeded=int(m2.group(2)), failed=int(m2.group(3)), errored=int(m2.group(4)), timeouts=int(m2.group(5)))
    if (m3 := re.search(r"status codes: (\d+) 2xx", out)):
        result["status_2xx"] = int(m3.group(1))
    if (m4 := re.search(r"traffic: .* total, .* headers .*, .*\((\d+)\) data", out)):
        result["data_bytes"] = int(m4.group(1))
    return result


def grpc_preflight(port, tls, token, body, ca):
    """One call with a real gRPC client, which reads the status trailers."""
    import grpc
    target = f"localhost:{port}"
    channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(open(ca, "rb").read())) if tls else grpc.insecure_channel(target)
    with channel:
        call = channel.unary_unary("/spark.connect.SparkConnectService/Config", request_serializer=None, response_deserializer=None)
        with open(body, "rb") as f:
            payload = f.read()[5:]
        try:
            call(payload, metadata=[("authorization", f"Bearer {token}")] if token else [], timeout=60)
            return "OK", ""
        except grpc.RpcError as e:
            return e.code().name, e.details()


def pyspark(workload, url, size, python, ca, timeout, on_mark=None):
    """Runs one client.py workload; `on_mark(name)` is called at each mark the client prints (the proxy's CPU is
    read there) while the client waits."""
    env = {**os.environ, "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": ca}
    p = subprocess.Popen([python, os.path.join(HERE, "client.py"), workload, url, str(size)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    stderr = []
    drain = threading.Thread(target=lambda: stderr.append(p.stderr.read()), daemon=True)
    drain.start()
    last = None
    try:
        for line in p.stdout:
            if line.startswith("mark "):
                if on_mark:
                    on_mark(line.split()[1])
                p.stdin.write("\n")
                p.stdin.flush()
            elif line.strip():
                last = line
        p.wait()
    finally:
        timer.cancel()
        drain.join(10)
    if p.returncode == -signal.SIGKILL:
        return {"error": f"did not finish within {timeout} s"}
    if p.returncode != 0 or last is None:
        lines = [l.strip() for l in "".join(stderr).strip().splitlines() if l.strip()]
        meaningful = [l for l in lines if "status =" in l or "details =" in l or "Error" in l or "Exception" in l]
        return {"error": " ".join((meaningful or lines or ["no output"])[-2:])[:300]}
    return json.loads(last)


def grpc_body(path, message):
    data = message.SerializeToString()
    with open(path, "wb") as f:
        f.write(b"\0" + len(data).to_bytes(4, "big") + data)
    return path


def make_sessions(port, token, ca, count):
    """Opens `count` authenticated sessions through Sparkgate (one Config call each), then leaves them idle."""
    import asyncio
    import grpc
    from pyspark.sql.connect.proto import base_pb2 as pb

    async def run():
        creds = grpc.ssl_channel_credentials(open(ca, "rb").read())
        async with grpc.aio.secure_channel(f"localhost:{port}", creds) as channel:
            call = channel.unary_unary("/spark.connect.SparkConnectService/Config", request_serializer=None, response_deserializer=None)
            sem = asyncio.Semaphore(64)
            failures = 0

            async def one():
                nonlocal failures
                req = pb.ConfigRequest(session_id=str(uuid.uuid4()))
                req.user_context.user_id = "bench"
                req.operation.get.keys.append("spark.sql.shuffle.partitions")
                async with sem:
                    try:
                        await call(req.SerializeToString(), metadata=[("authorization", f"Bearer {token}")], timeout=30)
                    except grpc.RpcError:
                        failures += 1

            await asyncio.gather(*(one() for _ in range(count)))
            return failures

    return asyncio.run(run())


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--synthetic-bin", required=True)
    ap.add_argument("--peers-venv", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--paths", default=None, help="comma-separated paths to measure (default: all)")
    ap.add_argument("--workloads", default=None, help=f"comma-separated workloads (default: all of {','.join(WORKLOADS)})")
    ap.add_argument("--baseline-bin", default=None, help="another sparkgate binary, measured as the path sparkgate-baseline")
    ap.add_argument("--baseline-legacy", action="store_true", help="the baseline predates admin.read_token_file")
    ap.add_argument("--floor-bin", default=None, help="the MinimalForwarder binary, measured as the path floor (the stack's own cost)")
    args = ap.parse_args()
    cfg = dict(SMOKE if args.smoke else FULL)
    if args.rounds:
        cfg["rounds"] = args.rounds
    chosen_paths = set(args.paths.split(",")) if args.paths else None
    if chosen_paths is not None:
        chosen_paths |= {"sparkgate"}
        if args.baseline_bin:
            chosen_paths.add("sparkgate-baseline")
    workloads = set(args.workloads.split(",")) if args.workloads else set(WORKLOADS)
    unknown = workloads - set(WORKLOADS)
    if unknown:
        ap.error(f"unknown workloads {sorted(unknown)}; choose from {','.join(WORKLOADS)}")
    wanted = lambda name: chosen_paths is None or name in chosen_paths
    work = tempfile.mkdtemp(prefix="sparkgate-bench-")
    python = sys.executable
    started = []
    results = {"mode": "smoke" if args.smoke else "full", "config": cfg, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
               "binary": args.bin}
    try:
        sg = lambda *a: subprocess.run([args.bin, *a], capture_output=True, text=True, check=True).stdout.strip()
        material = peers.material(work, args.bin)

        log("bench: starting Spark Connect 4.3 and the synthetic backend")
        spark = peers.spark_server(work, python)
        started.append(spark)
        synthetic = peers.synthetic_server(work, args.synthetic_bin)
        started.append(synthetic)
        log("bench: starting the proxies")
        gate = peers.sparkgate(work, args.bin, material, spark.port, synthetic.port)
        started.append(gate)
        token = lambda team, kid: sg("token", "issue", "--config", gate.config, "--user", "bench", "--team", team, "--kid", kid, "--ttl", "4h")
        es, es_syn, hs = token("bench", "bench-es256"), token("bench-synthetic", "bench-es256"), token("bench", "bench-hs256")
        paths = []
        if wanted("direct"):
            paths.append(Path("direct", [], spark.port, synthetic.port, False, None))
        if wanted("direct-token"):
            # PySpark with a token on localhost: what the client's own token handling costs per call (a Python
            # call-credentials plugin), the floor for any gateway that takes a token. Spark ignores the token.
            paths.append(Path("direct-token", [], spark.port, synthetic.port, False, "direct-token-unchecked", only={"conf"}))
        paths.append(Path("sparkgate", [gate.pid], gate.port, gate.port, True, es, es_syn))
        if args.baseline_bin:
            base = peers.sparkgate(work, args.baseline_bin, material, spark.port, synthetic.port, name="sparkgate-baseline", legacy=args.baseline_legacy)
            started.append(base)
            paths.append(Path("sparkgate-baseline", [base.pid], base.port, base.port, True, es, es_syn))
        if wanted("sparkgate-redis"):
            # The same gateway with quotas and ownership in Redis; Redis's CPU counts as the path's.
            red = peers.redis_server(work)
            started.append(red)
            gate_r = peers.sparkgate(work, args.bin, material, spark.port, synthetic.port, name="sparkgate-redis",
                                     state={"kind": "redis", "redis": {"addresses": [f"127.0.0.1:{red.port}"]}})
            started.append(gate_r)
            paths.append(Path("sparkgate-redis", [gate_r.pid, red.pid], gate_r.port, gate_r.port, True, es, es_syn))
        tracing_paths = [(name, ratio) for name, ratio in (("sparkgate-tracing-100", 1.0), ("sparkgate-tracing-1", 0.01)) if wanted(name)]
        if tracing_paths:
            # Tracing on, spans posted as OTLP/HTTP to a sink; only the gateway's CPU counts.
            sink = peers.otlp_sink(work, python)
            started.append(sink)
            for name, ratio in tracing_paths:
                gate_t = peers.sparkgate(work, args.bin, material, spark.port, synthetic.port, name=name,
                                         tracing={"otlp_endpoint": f"http://127.0.0.1:{sink.port}", "sample_ratio": ratio})
                started.append(gate_t)
                paths.append(Path(name, [gate_t.pid], gate_t.port, gate_t.port, True, es, es_syn))
        for stack, name in (("nghttp2", "floor"), ("nio", "floor-nio"), ("nghttp2-raw", "floor-raw")):
            if args.floor_bin and wanted(name):
                flo = peers.floor(work, args.floor_bin, material, spark.port, synthetic.port, stack=stack)
                started.append(flo)
                paths.append(Path(name, [flo.pid], flo.ports["spark"], flo.ports["synthetic"], True, None))
        if wanted("nghttpx") and shutil.which("nghttpx"):
            nx_spark = peers.nghttpx(work, material, spark.port, "spark")
            started.append(nx_spark)
            nx_syn = peers.nghttpx(work, material, synthetic.port, "synthetic")
            started.append(nx_syn)
            paths.append(Path("nghttpx", [nx_spark.pid, nx_syn.pid], nx_spark.port, nx_syn.port, True, None))
        if wanted("haproxy"):
            hap = peers.haproxy(work, material, spark.port, synthetic.port)
            started.append(hap)
            paths.append(Path("haproxy", [hap.pid], hap.ports["spark"], hap.ports["synthetic"], True, es))
        if wanted("nginx"):
            ngx = peers.nginx(work, material, spark.port, synthetic.port)
            started.append(ngx)
            paths.append(Path("nginx", [ngx.pid], ngx.ports["spark"], ngx.ports["synthetic"], True, None))
        if wanted("spark-connect-proxy"):
            scp_spark = peers.spark_connect_proxy(work, args.peers_venv, material, spark.port, "spark")
            started.append(scp_spark)
            scp_syn = peers.spark_connect_proxy(work, args.peers_venv, material, synthetic.port, "synthetic")
            started.append(scp_syn)
            paths.append(Path("spark-connect-proxy", [scp_spark.pid, scp_syn.pid], scp_spark.port, scp_syn.port, True, hs, call_scale=0.2))
        results["paths"] = {p.name: {} for p in paths}

        from pyspark.sql.connect.proto import base_pb2 as pb
        # One session per backend: Sparkgate refuses a session id in use by another identity (team).
        bodies = {}
        for backend in ("spark", "synthetic"):
            session = str(uuid.uuid4())
            config_req = pb.ConfigRequest(session_id=session, client_type="h2load")
            config_req.user_context.user_id = "bench"
            config_req.operation.get.keys.append("spark.sql.shuffle.partitions")
            exec_req = pb.ExecutePlanRequest(session_id=session, client_type="h2load")
            exec_req.user_context.user_id = "bench"
            exec_req.plan.root.range.end = 10
            bodies[backend] = (grpc_body(os.path.join(work, f"config-{backend}.bin"), config_req), grpc_body(os.path.join(work, f"execute-{backend}.bin"), exec_req))
        config_body, _ = bodies["spark"]
        synthetic_config_body, exec_body = bodies["synthetic"]

        # Preflight: every path answers OK at the gRPC level (h2load only sees HTTP status codes).
        for p in paths:
            if p.only:
                continue
            for port, token, body in ((p.spark_target, p.token, config_body), (p.synthetic_target, p.synthetic_token, synthetic_config_body)):
                code, detail = grpc_preflight(port, p.tls, token, body, material["ca"])
                if code != "OK":
                    raise RuntimeError(f"preflight via {p.name} to port {port}: {code} {detail}")

        def record(path, key, value):
            results["paths"][path.name].setdefault(key, []).append(value)

        def interleaved(name, fn, warm_up=None):
            """Runs `fn` through every path, round after round. Each round starts one path later than the one
            before: the backend (a JVM) changes as it runs (JIT, GC), and a path that always went first would
            always meet it colder. `warm_up`, when given, runs once through every path first, unmeasured."""
            if name not in workloads:
                return
            eligible = [p for p in paths if not (p.only and name not in p.only)
                        and p.name in cfg.get("only_via", {}).get(name, [p.name])]
            if warm_up:
                for path in eligible:
                    log(f"bench: {name} warm-up via {path.name}")
                    warm_up(path)
            for r in range(cfg["rounds"]):
                shift = r % len(eligible) if eligible else 0
                for path in eligible[shift:] + eligible[:shift]:
                    log(f"bench: {name} round {r + 1}/{cfg['rounds']} via {path.name}")
                    cpu0, t0 = path.cpu(), time.perf_counter()
                    out = fn(path)
                    out["proxy_cpu_s"] = (path.cpu() - cpu0) / 1e9
                    out["wall_s"] = time.perf_counter() - t0
                    record(path, name, out)

        # Real engine: Spark Connect 4.3 with the PySpark client.
        interleaved("arrow", lambda p: pyspark("arrow", p.spark_url(), cfg["arrow_rows"], python, material["ca"], cfg["timeout"]))
        def conf(p):
            marks = {}
            out = pyspark("conf", p.spark_url(), cfg["conf_calls"], python, material["ca"], cfg["timeout"], lambda name: marks.__setitem__(name, p.cpu()))
            if "loop" in marks and "end" in marks:
                out["loop_cpu_s"] = (marks["end"] - marks["loop"]) / 1e9
            return out
        interleaved("conf", conf)
        interleaved("upload", lambda p: pyspark("upload", p.spark_url(), cfg["upload_mb"], python, material["ca"], min(cfg["timeout"], 120)))
        def scaled(p, n):
            return max(1, int(n * p.call_scale))

        def config_h2load(p, m, calls):
            n = scaled(p, calls)
            out = h2load(p.h2_url(p.spark_target, "Config"), config_body, p.token, n, 1, m)
            out["requested"] = n
            return out
        interleaved("config_h2load_1", lambda p: config_h2load(p, 1, cfg["h2_config_calls"] // 6),
                    warm_up=lambda p: config_h2load(p, 1, cfg["h2_config_calls"] // 60))
        interleaved("config_h2load_32", lambda p: config_h2load(p, 32, cfg["h2_config_calls"]),
                    warm_up=lambda p: config_h2load(p, 32, cfg["h2_config_calls"] // 10))

        # Proxy-only cost: the synthetic backend.
        def unary(p, n, m):
            before = peers.synthetic_stats(synthetic)
            out = h2load(p.h2_url(p.synthetic_target, "Config"), synthetic_config_body, p.synthetic_token, n, 1, m)
            answered = peers.synthetic_stats(synthetic)["unary_calls"] - before["unary_calls"]
            out["errors"] = n - min(out.get("succeeded", 0), answered)
            return out
        interleaved("synthetic_unary_1", lambda p: unary(p, scaled(p, cfg["unary_calls_1"]), 1))
        interleaved("synthetic_unary_64", lambda p: unary(p, scaled(p, cfg["unary_calls_64"]), 64))

        # What one unary call costs each proxy, counted: syscalls, context switches, allocations.
        if "percall" in workloads:
            import percall
            results["percall"] = {}
            for label, m, n in (("sequential Config, 1 stream", 1, cfg["percall_calls_1"]), ("pipelined Config, 32 streams", 32, cfg["percall_calls_32"])):
                results["percall"][label] = {}
                for p in paths:
                    if not p.pids or p.name == "spark-connect-proxy":
                        continue
                    log(f"bench: per-call accounting, {label}, via {p.name}")
                    run = lambda p=p, m=m, n=n: h2load(p.h2_url(p.synthetic_target, "Config"), synthetic_config_body, p.synthetic_token, n, 1, m)
                    results["percall"][label][p.name] = percall.account(p.pids, run, lambda out: out.get("succeeded", 0))

        # Both event loops busy: the same streams over one connection and over two.
        if "loops" in workloads:
            results["loops"] = {}
            for r in range(cfg["rounds"]):
                for p in paths:
                    if p.only:
                        continue
                    for c, m in LOOP_SHAPES[:cfg.get("loop_shapes", len(LOOP_SHAPES))]:
                        log(f"bench: loops round {r + 1}/{cfg['rounds']} via {p.name}, {c} connection(s) x {m} streams")
                        out = h2load(p.h2_url(p.synthetic_target, "Config"), synthetic_config_body, p.synthetic_token, scaled(p, cfg["loop_calls"]), c, m)
                        results["loops"].setdefault(p.name, {}).setdefault(f"{c}x{m}", []).append(out.get("req_per_s"))

        def stream(p):
            before = peers.synthetic_stats(synthetic)
            out = h2load(p.h2_url(p.synthetic_target, "ExecutePlan"), exec_body, p.synthetic_token, 1, 1, 1, [f"x-synthetic-bytes: {cfg['stream_bytes']}"])
            after = peers.synthetic_stats(synthetic)
            out["complete"] = after["completed_streams"] - before["completed_streams"] == 1 and out.get("data_bytes", 0) >= cfg["stream_bytes"]
            return out
        interleaved("synthetic_stream", stream)

        def concurrent(p):
            before = peers.synthetic_stats(synthetic)
            n = cfg["concurrent_streams"]
            out = h2load(p.h2_url(p.synthetic_target, "ExecutePlan"), exec_body, p.synthetic_token, n, max(1, n // 100), 100,
                         [f"x-synthetic-bytes: {cfg['concurrent_stream_bytes']}", "x-synthetic-batch: 65536"])
            after = peers.synthetic_stats(synthetic)
            out["completed_at_backend"] = after["completed_streams"] - before["completed_streams"]
            out["errors"] = n - min(out.get("succeeded", 0), out["completed_at_backend"])
            return out
        interleaved("concurrent_streams", concurrent)

        # What session-id namespacing costs on a stream: the same Sparkgate with it off, interleaved.
        if "namespacing" in workloads:
            plain = peers.sparkgate(work, args.bin, material, spark.port, synthetic.port, namespace=False, name="sparkgate-no-namespace")
            started.append(plain)
            gate_path = next(p for p in paths if p.name == "sparkgate")
            ns_paths = [gate_path, Path("sparkgate-no-namespace", [plain.pid], plain.port, plain.port, True, es, es_syn)]
            results["namespacing"] = {"on": [], "off": []}
            for r in range(cfg["rounds"]):
                for p, key in zip(ns_paths, ("on", "off")):
                    log(f"bench: namespacing cost round {r + 1}/{cfg['rounds']} ({key})")
                    cpu0 = p.cpu()
                    out = stream(p)
                    out["proxy_cpu_s"] = (p.cpu() - cpu0) / 1e9
                    results["namespacing"][key].append(out)
            plain.close()

        # Peak memory under everything above, before the idle sessions below inflate it on purpose.
        results["peak_rss"] = {p.name: peers.peak_rss_bytes(p.pids) for p in paths if p.pids}
        # Sparkgate's memory with idle authenticated sessions.
        if "idle_sessions" in workloads:
            rss0 = peers.rss_bytes(gate.pid)
            failures = make_sessions(gate.port, es_syn, material["ca"], cfg["idle_sessions"])
            time.sleep(1)
            status = subprocess.run(["curl", "-s", "-H", f"Authorization: Bearer {gate.admin_token}", f"http://127.0.0.1:{gate.admin}/v1/sessions?team=bench-synthetic"],
                                    capture_output=True, text=True).stdout
            results["idle_sessions"] = {"sessions": cfg["idle_sessions"], "failures": failures, "rss_before": rss0, "rss_after": peers.rss_bytes(gate.pid),
                                        "listed": json.loads(status).get("count") if status.startswith("{") else None}
    finally:
        for p in reversed(started):
            p.close()

    summary = summarize(results, cfg)
    results["summary"] = summary
    out = args.out or os.path.join(ROOT, "bench-results", f"{'smoke' if args.smoke else 'full'}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(render(summary, results))
    log(f"bench: raw results in {out}")
    # Peers failing a workload is a finding to report; Sparkgate or the direct path failing is a bug.
    failed = [name for name, row in summary["paths"].items() if row.get("broken") and name in ("direct", "sparkgate")]
    if failed:
        log(f"bench: these paths failed a workload: {failed}")
        sys.exit(1)


def summarize(results, cfg):
    s = {"paths": {}}
    for name, w in results["paths"].items():
        row = {}
        broken = []

        def ok(runs, key="error"):
            good = [r for r in runs if key not in r]
            if len(good) < len(runs):
                broken.append(runs[0].get(key) if runs else "no run")
            return good

        arrow = ok(w.get("arrow", []))
        row["arrow_s"] = median([r["seconds"] for r in arrow])
        row["arrow_mb_s"] = median([r["mb_per_s"] for r in arrow])
        row["arrow_checksums_ok"] = all(r.get("checksum_ok") for r in arrow) and bool(arrow)
        row["arrow_ran"] = bool(w.get("arrow"))
        row["arrow_cpu_s"] = median([r["proxy_cpu_s"] for r in arrow])
        row["arrow_cpu_s_per_gb"] = median([r["proxy_cpu_s"] / (r["bytes"] / 1e9) for r in arrow])
        conf = ok(w.get("conf", []))
        lat = [x for r in conf for x in r["latencies_us"]]
        row["conf_p50_us"], row["conf_p90_us"], row["conf_p99_us"] = percentile(lat, .5), percentile(lat, .9), percentile(lat, .99)
        # Per call: the proxy's CPU across the timed calls only; the session's setup (TLS handshake, token check,
        # session start, warm-up calls, close) is reported beside it, once per session.
        row["conf_cpu_us_per_call"] = median([r["loop_cpu_s"] * 1e6 / cfg["conf_calls"] for r in conf if "loop_cpu_s" in r])
        row["conf_session_cpu_ms"] = median([(r["proxy_cpu_s"] - r["loop_cpu_s"]) * 1e3 for r in conf if "loop_cpu_s" in r])
        upload = [r for r in w.get("upload", [])]
        good_uploads = [r for r in upload if "error" not in r and r.get("rows_ok")]
        row["upload_s"] = median([r["seconds"] for r in good_uploads])
        row["upload_failed"] = None if len(good_uploads) == len(upload) else next((r.get("error", "wrong row count") for r in upload if r not in good_uploads), None)
        h2c = w.get("config_h2load_32", [])
        row["config_rps_32"] = median([r.get("req_per_s") for r in h2c])
        row["config_cpu_us_per_call_h2load"] = median([r["proxy_cpu_s"] * 1e6 / max(1, r.get("succeeded", 0)) for r in h2c])
        row["config_h2load_ok"] = all(r.get("succeeded") == r.get("requested", cfg["h2_config_calls"]) for r in h2c)
        row["config_rps_1"] = median([r.get("req_per_s") for r in w.get("config_h2load_1", [])])
        row["peak_rss_mb"] = (results.get("peak_rss") or {}).get(name, 0) / 1e6 or None
        row["unary_rps_1"] = median([r.get("req_per_s") for r in w.get("synthetic_unary_1", [])])
        row["unary_rps_64"] = median([r.get("req_per_s") for r in w.get("synthetic_unary_64", [])])
        unary_errors = sum(r.get("errors", 0) for k in ("synthetic_unary_1", "synthetic_unary_64") for r in w.get(k, []))
        if unary_errors:
            broken.append(f"{unary_errors} synthetic unary calls failed")
        st = w.get("synthetic_stream", [])
        row["stream_gb_s"] = median([cfg["stream_bytes"] / r["seconds"] / 1e9 for r in st if r.get("seconds") and r.get("complete")])
        row["stream_cpu_s_per_gib"] = median([r["proxy_cpu_s"] / (cfg["stream_bytes"] / 2**30) for r in st if r.get("complete")])
        row["stream_complete"] = all(r.get("complete") for r in st) and bool(st)
        cs = w.get("concurrent_streams", [])
        row["concurrent_errors"] = max([r.get("errors", cfg["concurrent_streams"]) for r in cs], default=None)
        if st and not row["stream_complete"]:
            broken.append("synthetic stream incomplete")
        if row["concurrent_errors"]:
            broken.append(f"{row['concurrent_errors']} of {cfg['concurrent_streams']} concurrent streams failed")
        if row["upload_failed"]:
            broken.append(f"upload: {row['upload_failed']}")
        row["broken"] = broken
        s["paths"][name] = row
    s["idle"] = results.get("idle_sessions")
    ns = results.get("namespacing")
    if ns:
        per_gib = lambda runs: median([r["proxy_cpu_s"] / (cfg["stream_bytes"] / 2**30) for r in runs if r.get("complete")])
        s["namespacing_cpu_s_per_gib"] = {"on": per_gib(ns["on"]), "off": per_gib(ns["off"])}
    s["targets"] = targets(s, cfg)
    return s


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def targets(s, cfg):
    p = s["paths"]
    # A path left out of the run reads as "not measured" everywhere.
    missing = {k: None for k in p["sparkgate"]}
    g, d, h, n, x = (p.get(k, missing) for k in ("sparkgate", "direct", "haproxy", "nginx", "spark-connect-proxy"))
    t = []

    def check(name, met, detail):
        t.append({"target": name, "met": bool(met) if met is not None else None, "detail": detail})

    def fmt(v, unit="", digits=0):
        return "n/a" if v is None else f"{v:,.{digits}f}{unit}"

    lt = lambda a, b: None if a is None or b is None else a <= b
    check("Config p50 <= direct + 150 us", lt(g["conf_p50_us"], (d["conf_p50_us"] or 0) + 150), f"{fmt(g['conf_p50_us'], ' us')} vs direct {fmt(d['conf_p50_us'], ' us')}")
    dt = p.get("direct-token", missing)
    check("Config p50 <= direct with token + 150 us", None if dt["conf_p50_us"] is None else lt(g["conf_p50_us"], dt["conf_p50_us"] + 150),
          f"{fmt(g['conf_p50_us'], ' us')} vs direct with token {fmt(dt['conf_p50_us'], ' us')}")
    check("Config p50 below nginx and HAProxy", None if None in (g["conf_p50_us"], n["conf_p50_us"], h["conf_p50_us"]) else g["conf_p50_us"] < min(n["conf_p50_us"], h["conf_p50_us"]),
          f"{fmt(g['conf_p50_us'], ' us')} vs nginx {fmt(n['conf_p50_us'], ' us')}, HAProxy {fmt(h['conf_p50_us'], ' us')}")
    check("Sparkgate CPU per Config call <= nginx's", lt(g["config_cpu_us_per_call_h2load"], n["config_cpu_us_per_call_h2load"]),
          f"{fmt(g['config_cpu_us_per_call_h2load'], ' us', 1)} vs nginx {fmt(n['config_cpu_us_per_call_h2load'], ' us', 1)} (h2load, 32 streams); sequential PySpark: {fmt(g['conf_cpu_us_per_call'], ' us', 1)} vs {fmt(n['conf_cpu_us_per_call'], ' us', 1)}")
    check("Config calls/s at 32 streams >= 1.10x nginx's", None if None in (n["config_rps_32"], g["config_rps_32"]) else g["config_rps_32"] >= 1.10 * n["config_rps_32"],
          f"{fmt(g['config_rps_32'])} vs nginx {fmt(n['config_rps_32'])} ({fmt(ratio(g['config_rps_32'], n['config_rps_32']), 'x', 2)}), direct {fmt(d['config_rps_32'])}")
    check("Config calls/s at 1 stream >= nginx's", lt(n["config_rps_1"], g["config_rps_1"]),
          f"{fmt(g['config_rps_1'])} vs nginx {fmt(n['config_rps_1'])} ({fmt(ratio(g['config_rps_1'], n['config_rps_1']), 'x', 2)}), direct {fmt(d['config_rps_1'])}")
    check("CPU per sequential Config call <= HAProxy's", lt(g["conf_cpu_us_per_call"], h["conf_cpu_us_per_call"]),
          f"{fmt(g['conf_cpu_us_per_call'], ' us', 1)} vs HAProxy {fmt(h['conf_cpu_us_per_call'], ' us', 1)}, nginx {fmt(n['conf_cpu_us_per_call'], ' us', 1)}")
    check("streaming CPU per GiB <= nginx's (synthetic)", lt(g["stream_cpu_s_per_gib"], n["stream_cpu_s_per_gib"]),
          f"{fmt(g['stream_cpu_s_per_gib'], ' s', 2)} vs nginx {fmt(n['stream_cpu_s_per_gib'], ' s', 2)}")
    check("peak RSS <= 48 MB (before the idle-session test)", None if g["peak_rss_mb"] is None else g["peak_rss_mb"] <= 48, f"{fmt(g['peak_rss_mb'], ' MB', 1)}")
    check("result stream wall time <= 1.02x direct", None if ratio(g["arrow_s"], d["arrow_s"]) is None else ratio(g["arrow_s"], d["arrow_s"]) <= 1.02, f"{fmt(ratio(g['arrow_s'], d['arrow_s']), 'x', 3)}")
    check("upload wall time <= 1.02x direct", None if ratio(g["upload_s"], d["upload_s"]) is None else ratio(g["upload_s"], d["upload_s"]) <= 1.02, f"{fmt(ratio(g['upload_s'], d['upload_s']), 'x', 3)}")
    check("CPU per streamed GB <= HAProxy's", lt(g["arrow_cpu_s_per_gb"], h["arrow_cpu_s_per_gb"]), f"{fmt(g['arrow_cpu_s_per_gb'], ' s/GB', 2)} vs HAProxy {fmt(h['arrow_cpu_s_per_gb'], ' s/GB', 2)}")
    check("(stretch) CPU per streamed GB <= nginx's", lt(g["arrow_cpu_s_per_gb"], n["arrow_cpu_s_per_gb"]), f"{fmt(g['arrow_cpu_s_per_gb'], ' s/GB', 2)} vs nginx {fmt(n['arrow_cpu_s_per_gb'], ' s/GB', 2)}")
    check("synthetic streaming throughput >= HAProxy's", lt(h["stream_gb_s"], g["stream_gb_s"]), f"{fmt(g['stream_gb_s'], ' GB/s', 2)} vs HAProxy {fmt(h['stream_gb_s'], ' GB/s', 2)}")
    check("synthetic unary req/s at 64 streams >= HAProxy's", lt(h["unary_rps_64"], g["unary_rps_64"]), f"{fmt(g['unary_rps_64'])} vs HAProxy {fmt(h['unary_rps_64'])}")
    check(f"{cfg['concurrent_streams']} concurrent streams with 0 errors", g["concurrent_errors"] == 0, f"{g['concurrent_errors']} errors")
    idle = s.get("idle") or {}
    rss = idle.get("rss_after")
    # The preflight opened one more session for the same team, so at least `idle_sessions` are listed.
    check(f"{cfg['idle_sessions']:,} idle authenticated sessions in <= 200 MB RSS", None if rss is None else rss <= 200e6 and idle.get("failures") == 0 and (idle.get("listed") or 0) >= cfg["idle_sessions"],
          f"{fmt(rss / 1e6 if rss else None, ' MB', 1)} RSS ({fmt((idle.get('rss_before') or 0) / 1e6, ' MB', 1)} before), {idle.get('listed')} listed, {idle.get('failures')} failures")
    r = p.get("sparkgate-redis")
    if r:
        added = None if None in (r["conf_p50_us"], g["conf_p50_us"]) else r["conf_p50_us"] - g["conf_p50_us"]
        check("shared state (redis) adds < 150 us to Config p50", None if added is None else added < 150,
              f"{fmt(r['conf_p50_us'], ' us')} vs memory {fmt(g['conf_p50_us'], ' us')} (+{fmt(added, ' us')}); CPU per call (gateway + redis, h2load 32 streams) "
              f"{fmt(r['config_cpu_us_per_call_h2load'], ' us', 1)} vs {fmt(g['config_cpu_us_per_call_h2load'], ' us', 1)}")
    for name, label in (("sparkgate-tracing-100", "100%"), ("sparkgate-tracing-1", "1%")):
        t_ = p.get(name)
        if t_:
            # Reported, not a target: what tracing at this sample ratio costs per call.
            check(f"tracing at {label} sampling: cost per call reported", True,
                  f"CPU per call (h2load 32 streams) {fmt(t_['config_cpu_us_per_call_h2load'], ' us', 1)} vs {fmt(g['config_cpu_us_per_call_h2load'], ' us', 1)} untraced "
                  f"({fmt(ratio(t_['config_cpu_us_per_call_h2load'], g['config_cpu_us_per_call_h2load']), 'x', 2)}); sequential {fmt(t_['conf_cpu_us_per_call'], ' us', 1)} vs "
                  f"{fmt(g['conf_cpu_us_per_call'], ' us', 1)}; Config p50 {fmt(t_['conf_p50_us'], ' us')} vs {fmt(g['conf_p50_us'], ' us')}; "
                  f"synthetic unary 1 stream {fmt(t_['unary_rps_1'])} vs {fmt(g['unary_rps_1'])} req/s")
    check(">= 10x better than spark-connect-proxy: CPU per call", None if None in (g["config_cpu_us_per_call_h2load"], x["config_cpu_us_per_call_h2load"]) else x["config_cpu_us_per_call_h2load"] >= 10 * g["config_cpu_us_per_call_h2load"],
          f"{fmt(ratio(x['config_cpu_us_per_call_h2load'], g['config_cpu_us_per_call_h2load']), 'x', 1)}")
    check(">= 10x better than spark-connect-proxy: synthetic throughput", None if None in (g["stream_gb_s"], x["stream_gb_s"]) else g["stream_gb_s"] >= 10 * x["stream_gb_s"],
          f"{fmt(ratio(g['stream_gb_s'], x['stream_gb_s']), 'x', 1)}")
    return t


def render(s, results):
    p = s["paths"]
    names = list(p)
    f = lambda v, d=0: "—" if v is None else f"{v:,.{d}f}"
    lines = [f"Sparkgate benchmark ({results['mode']}, {results['date']}, {results['machine']['cpus']} CPUs, {results['machine']['memory_gb']} GiB)", ""]
    arrow_rows = results["config"]["arrow_rows"]
    arrow_label = f"{arrow_rows // 1_000_000}M-row toArrow: median s" if arrow_rows >= 1_000_000 else f"{arrow_rows // 1000}k-row toArrow: median s"
    rows = [
        (arrow_label, lambda r: f(r["arrow_s"], 2)), ("  MB/s", lambda r: f(r["arrow_mb_s"], 1)), ("  checksums equal", lambda r: "—" if not r["arrow_ran"] else ("yes" if r["arrow_checksums_ok"] else "NO")),
        ("  proxy CPU s per GB", lambda r: f(r["arrow_cpu_s_per_gb"], 2)),
        ("spark.conf.get p50 us", lambda r: f(r["conf_p50_us"])), ("  p90 us", lambda r: f(r["conf_p90_us"])), ("  p99 us", lambda r: f(r["conf_p99_us"])),
        ("  proxy CPU us per call (sequential)", lambda r: f(r["conf_cpu_us_per_call"], 1)),
        ("  proxy CPU ms per session (setup, close)", lambda r: f(r.get("conf_session_cpu_ms"), 1)),
        ("createDataFrame upload s", lambda r: f(r["upload_s"], 2) if not r["upload_failed"] else "failed"),
        ("Config calls/s, h2load 1 conn x 1", lambda r: f(r["config_rps_1"])),
        ("Config calls/s, h2load 1 conn x 32", lambda r: f(r["config_rps_32"])), ("  proxy CPU us per call", lambda r: f(r["config_cpu_us_per_call_h2load"], 1)),
        ("synthetic unary req/s, 1 stream", lambda r: f(r["unary_rps_1"])), ("synthetic unary req/s, 64 streams", lambda r: f(r["unary_rps_64"])),
        ("synthetic stream GB/s", lambda r: f(r["stream_gb_s"], 2)), ("  proxy CPU s per GiB", lambda r: f(r["stream_cpu_s_per_gib"], 2)),
        ("concurrent streams: errors", lambda r: f(r["concurrent_errors"])),
        ("peak RSS MB", lambda r: f(r["peak_rss_mb"], 1)),
    ]
    width = 38
    lines.append("| workload".ljust(width) + " | " + " | ".join(names) + " |")
    lines.append("|" + "-" * (width - 1) + "|" + "|".join("-" * (len(n) + 2) for n in names) + "|")
    for label, fn in rows:
        lines.append(("| " + label).ljust(width) + " | " + " | ".join(fn(p[n]).rjust(len(n)) for n in names) + " |")
    lines.append("")
    ns = s.get("namespacing_cpu_s_per_gib")
    if ns and ns["on"] is not None and ns["off"] is not None:
        lines.append(f"Session-id namespacing on a synthetic stream: {ns['on']:.3f} CPU s/GiB on, {ns['off']:.3f} off "
                     f"({(ns['on'] - ns['off']) * 1000:+.0f} ms per GiB)")
        lines.append("")
    if results.get("percall"):
        import percall
        lines.append(percall.render(results["percall"]))
    if results.get("loops"):
        lines.append("Synthetic unary req/s, the same streams over one connection and over two (two event loops):")
        lines.append("| connections x streams | " + " | ".join(results["loops"]) + " |")
        lines.append("|---|" + "---|" * len(results["loops"]))
        for c, m in LOOP_SHAPES:
            key = f"{c}x{m}"
            lines.append(f"| {key} | " + " | ".join(f(median(v.get(key, []))) for v in results["loops"].values()) + " |")
        lines.append("")
    for t in s["targets"]:
        mark = "met" if t["met"] else ("n/a" if t["met"] is None else "NOT met")
        lines.append(f"- [{mark}] {t['target']}: {t['detail']}")
    for n in names:
        if p[n]["broken"]:
            lines.append(f"- {n}: {'; '.join(str(b) for b in p[n]['broken'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
