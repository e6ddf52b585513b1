"""A new tenant's first call on a launch pool, with and without warm engines, on Sail and Spark.

Each engine kind runs behind one gateway twice: without warm engines (every first call launches one) and
with `warm_engines: 1` (a first call takes the warm engine; the next waits for its replacement to be ready,
as a later tenant would find it). Run through scripts/bench.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "Tests", "integration"))

import harness  # noqa: E402


def first_call(gw, token):
    from pyspark.sql.connect.proto import base_pb2 as pb
    req = pb.ConfigRequest(session_id=str(uuid.uuid4()))
    req.user_context.user_id = "x"
    req.operation.get_option.keys.append("spark.app.name")
    started = time.perf_counter()
    harness.grpc_call(gw, "Config", req, token=token, timeout=300)
    return time.perf_counter() - started


def engines(gw):
    import json
    status, body = gw.admin("/v1/engines")
    return json.loads(body)["engines"] if status == 200 else []


def launch_settings(kind, work_dir):
    if kind == "sail":
        sail = os.environ.get("SPARKGATE_SAIL_BIN") or os.path.join(ROOT, ".venv-sail", "bin", "sail")
        command = [sail, "spark", "server", "--ip", "127.0.0.1", "--port", "{port}"]
        environment = {}
    else:
        import pyspark
        home = os.path.dirname(pyspark.__file__)
        command = ["bash", os.path.join(home, "sbin", "start-connect-server.sh"), "--driver-memory", "1g",
                   "--conf", "spark.connect.grpc.binding.port={port}", "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
                   "--conf", "spark.ui.enabled=false"]
        environment = {"SPARK_HOME": home, "SPARK_NO_DAEMONIZE": "1", "SPARK_LOG_DIR": "{work_dir}", "SPARK_PID_DIR": "{work_dir}",
                       "SPARK_CONNECT_AUTHENTICATE_TOKEN": "{token}"}
    start = 40000 + (hash(kind + work_dir) % 1000) * 10
    return {"command": command, "environment": environment, "share": "user", "ports": f"{start}-{start + 9}", "startup_timeout_seconds": 180,
            "idle_seconds": 3600, "stop_grace_seconds": 5, "max_engines": 6, "work_dir": work_dir}


def measure(material, kind, warm, tenants, binary):
    config = material.base_config("127.0.0.1:1")
    launch = launch_settings(kind, tempfile.mkdtemp(prefix=f"bench-engines-{kind}-", dir=material.dir))
    launch["warm_engines"] = warm
    config["backends"] = {"engines": {"launch": launch}}
    config["defaults"]["backend"] = "engines"
    gw = harness.Gateway(material, config, name=f"engines-{kind}-{warm}", binary=binary)
    times = []
    try:
        for i in range(tenants):
            if warm:
                deadline = time.time() + 300
                while not [e for e in engines(gw) if e.get("warm") and e["state"] == "ready"]:
                    if time.time() > deadline:
                        raise RuntimeError("no warm engine became ready")
                    time.sleep(0.1)
            times.append(first_call(gw, material.token(f"tenant{i}-{uuid.uuid4().hex[:6]}")))
    finally:
        gw.close()
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    harness.BIN = args.bin  # the CLI that makes certificates and tokens: the binary under test
    workdir = tempfile.mkdtemp(prefix="sparkgate-bench-engines-")
    material = harness.Material(workdir)
    kinds = [("sail", 1 if args.smoke else 3)] + ([] if args.smoke else [("spark", 2)])
    rows = []
    for kind, tenants in kinds:
        cold = measure(material, kind, 0, tenants, args.bin)
        warm = measure(material, kind, 1, tenants, args.bin)
        rows.append((kind, tenants, statistics.median(cold), statistics.median(warm)))
    print("\nA new tenant's first call on a launch pool (median; Config call, through the gateway):")
    print(f"| engine | tenants | without warm engines | with warm_engines: 1 | ratio |")
    print("|---|---|---|---|---|")
    for kind, tenants, cold, warm in rows:
        print(f"| {kind} | {tenants} | {cold * 1000:,.0f} ms | {warm * 1000:,.0f} ms | {cold / warm:,.0f}x |")


if __name__ == "__main__":
    main()
