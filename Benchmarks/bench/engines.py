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


TEAM_USER = "sgb-{team}"


def ensure_user(name):
    import pwd
    import subprocess
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--create-home", "--shell", "/usr/sbin/nologin", name], check=True)


def launch_settings(kind, work_dir, as_tenant=False):
    sail = os.environ.get("SPARKGATE_SAIL_BIN") or os.path.join(ROOT, ".venv-sail", "bin", "sail")
    if kind == "sail" and as_tenant:
        # The venv's interpreter lives under /root, which tenants cannot enter: the system's Python runs Sail.
        import subprocess
        site = subprocess.run([os.path.join(os.path.dirname(sail), "python"), "-c", "import site; print(site.getsitepackages()[0])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        command = ["/usr/bin/python3.11", "-c", "import sys; from pysail.cli import main; sys.argv[0] = 'sail'; sys.exit(main())",
                   "spark", "server", "--ip", "127.0.0.1", "--port", "{port}"]
        environment = {"PYTHONPATH": site}
    elif kind == "sail":
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


def engine_dir():
    """A work_dir base tenants' users can pass through (the material's directory is closed to them)."""
    base = tempfile.mkdtemp(prefix="bench-engines-")
    os.chmod(base, 0o711)
    return os.path.join(base, "engines")


def measure(material, kind, warm, tenants, binary, per_team=False):
    """Median first-call time of `tenants` new tenants: users of one team (share: user, warm_engines), or new
    teams each with its engines as its own OS user (share: team, run_as sgb-{team}, warm_engines_per_team)."""
    config = material.base_config("127.0.0.1:1")
    launch = launch_settings(kind, engine_dir() if per_team else tempfile.mkdtemp(prefix=f"bench-engines-{kind}-", dir=material.dir), as_tenant=per_team)
    teams = [f"bench{i}" for i in range(tenants)]
    if per_team:
        for team in teams:
            ensure_user(TEAM_USER.replace("{team}", team))
        launch.update(share="team", run_as=TEAM_USER, warm_engines_per_team=warm, max_engines=2 * tenants + 2)
        config["teams"] = {team: {} for team in teams}
    else:
        launch["warm_engines"] = warm
    config["backends"] = {"engines": {"launch": launch}}
    config["defaults"]["backend"] = "engines"
    gw = harness.Gateway(material, config, name=f"engines-{kind}-{warm}{'-team' if per_team else ''}", binary=binary)
    times = []
    try:
        for i in range(tenants):
            if warm:
                wanted = f"warm:{teams[i]}" if per_team else "warm"
                deadline = time.time() + 300
                while not [e for e in engines(gw) if e.get("share_key") == wanted and e["state"] == "ready"]:
                    if time.time() > deadline:
                        raise RuntimeError("no warm engine became ready")
                    time.sleep(0.1)
            token = material.token(f"user{i}", team=teams[i]) if per_team else material.token(f"tenant{i}-{uuid.uuid4().hex[:6]}")
            times.append(first_call(gw, token))
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
        rows.append((kind, "a new user (share: user, warm_engines: 1)", tenants, statistics.median(cold), statistics.median(warm)))
        if os.geteuid() == 0:
            # Each team's engines as the team's own OS user: warm engines kept per team.
            cold = measure(material, kind, 0, tenants, args.bin, per_team=True)
            warm = measure(material, kind, 1, tenants, args.bin, per_team=True)
            rows.append((kind, "a new team as its own OS user (run_as sgb-{team}, warm_engines_per_team: 1)", tenants, statistics.median(cold),
                         statistics.median(warm)))
    print("\nA new tenant's first call on a launch pool (median; Config call, through the gateway):")
    print("| engine | tenant | tenants | without warm engines | with warm engines | ratio |")
    print("|---|---|---|---|---|---|")
    for kind, tenant, tenants, cold, warm in rows:
        print(f"| {kind} | {tenant} | {tenants} | {cold * 1000:,.0f} ms | {warm * 1000:,.0f} ms | {cold / warm:,.0f}x |")


if __name__ == "__main__":
    main()
