"""The backend's share of a pipelined call: Spark Connect 4.3's JVM CPU per Config call (h2load, 1 connection x
32 streams) behind Sparkgate, the minimal forwarder and nginx, with the proxy's own CPU beside it. Answers whether
what a proxy sends makes the engine work harder, and how much of a round the JVM's warm-up (JIT, GC) takes.

    .venv/bin/python Benchmarks/bench/backend_cpu.py --bin .build/release/sparkgate \\
        --synthetic-bin .build/release/SyntheticSparkConnect --floor-bin .build/release/MinimalForwarder
"""
import argparse
import os
import subprocess
import sys
import tempfile
import uuid

import peers
from bench import grpc_body, h2load


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--synthetic-bin", required=True)
    ap.add_argument("--floor-bin", required=True)
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="sparkgate-backend-cpu-")
    sg = lambda *a: subprocess.run([args.bin, *a], capture_output=True, text=True, check=True).stdout.strip()
    material = peers.material(work, args.bin)
    started = []
    try:
        spark = peers.spark_server(work, sys.executable)
        started.append(spark)
        synthetic = peers.synthetic_server(work, args.synthetic_bin)
        started.append(synthetic)
        gate = peers.sparkgate(work, args.bin, material, spark.port, synthetic.port)
        started.append(gate)
        floor = peers.floor(work, args.floor_bin, material, spark.port, synthetic.port)
        started.append(floor)
        nginx = peers.nginx(work, material, spark.port, synthetic.port)
        started.append(nginx)
        token = sg("token", "issue", "--config", gate.config, "--user", "bench", "--team", "bench", "--kid", "bench-es256", "--ttl", "4h")
        from pyspark.sql.connect.proto import base_pb2 as pb
        request = pb.ConfigRequest(session_id=str(uuid.uuid4()), client_type="h2load")
        request.user_context.user_id = "bench"
        request.operation.get.keys.append("spark.sql.shuffle.partitions")
        body = grpc_body(os.path.join(work, "config.bin"), request)
        paths = [("sparkgate", gate.pid, gate.port, token), ("floor", floor.pid, floor.ports["spark"], None),
                 ("nginx", nginx.pid, nginx.ports["spark"], None)]
        url = lambda port: f"https://localhost:{port}/spark.connect.SparkConnectService/Config"
        print(f"| round | path | calls/s | Spark JVM CPU µs per call | proxy CPU µs per call |\n|---|---|---|---|---|")
        for r in range(args.rounds):
            for name, pid, port, tok in paths:
                spark0, proxy0 = peers.cpu_ns([spark.pid]), peers.cpu_ns([pid])
                out = h2load(url(port), body, tok, args.calls, 1, args.streams)
                spark1, proxy1 = peers.cpu_ns([spark.pid]), peers.cpu_ns([pid])
                ok = max(out.get("succeeded", 0), 1)
                print(f"| {r + 1} | {name} | {out.get('req_per_s', 0):,.0f} | {(spark1 - spark0) / 1e3 / ok:.1f} | {(proxy1 - proxy0) / 1e3 / ok:.1f} |", flush=True)
    finally:
        for p in reversed(started):
            p.close()


if __name__ == "__main__":
    main()
