"""Every PySpark client a user runs against every Spark Connect server an operator runs, each pair tried
directly and through Sparkgate on the same work (Tests/compat/client_work.py), with the rule checked: a pair
that works directly works through Sparkgate with the same results, and nothing through Sparkgate hangs or
fails without a clear reason. Prints the matrix; --write puts it in docs/compatibility.md and the README.

    scripts/compat                  # every pair, the full work (under 3 minutes on 2 cores once installed)
    scripts/compat --ci             # the newest pair in full, every other pair a smoke subset
    scripts/compat --write          # a full run that also rewrites the docs' matrix
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "Tests", "integration"))

import harness  # noqa: E402
import jvm_work  # noqa: E402

VENVS = os.environ.get("SPARKGATE_COMPAT_VENVS") or os.path.join(ROOT, ".venv-compat")
# (name, venv, pip requirements); None is this venv (PySpark 4.3.0, the suite's own).
CLIENTS = [
    ("PySpark 3.5.9", "pyspark-3.5", ["pyspark[connect]==3.5.9", "pandas<2.3", "numpy<2", "pyarrow<18"]),
    ("PySpark 4.0.5", "pyspark-4.0", ["pyspark[connect]==4.0.5", "pandas<3"]),
    ("PySpark 4.1.4", "pyspark-4.1", ["pyspark[connect]==4.1.4", "pandas<3"]),
    ("PySpark 4.2.1", "pyspark-4.2", ["pyspark[connect]==4.2.1", "pandas<3"]),
    ("PySpark 4.3.0", None, []),
    ("pyspark-client 4.2.0", "pyspark-client-4.2", ["pyspark-client==4.2.0", "pandas<3"]),
]
# Spark's JVM client (`spark-shell --remote`): 4.0.0 and 4.1.0 send their token over TLS as `Authentication`, which Spark's
# own check refuses and Sparkgate reads; 4.3.0 sends `Authorization`. (name, version of the bundled client).
JVM_CLIENTS = [("JVM client 4.0.0", "4.0.0"), ("JVM client 4.1.0", "4.1.0"), ("JVM client 4.3.0", "4.3.0")]
JVM_FULL = ["sql", "temp_view", "other_user", "stop"]
# The JVM pair CI runs (each shell is a JVM start): the client that needs Sparkgate's `authentication`
# support, against the newest server.
JVM_CI = ("JVM client 4.1.0", "Spark 4.3.0")
# Clients whose `token=` goes out only over TLS: directly against a plaintext Spark they send the bearer header
# themselves (PySpark 3.5 passes every URL parameter it does not know as gRPC metadata).
TOKEN_ONLY_OVER_TLS = {"PySpark 3.5.9"}
# Servers run from a client's venv: its pyspark package bundles the server.
SERVERS = [("Spark 4.0.5", "PySpark 4.0.5"), ("Spark 4.3.0", "PySpark 4.3.0")]
FULL = ["sql", "large_result", "upload", "udf", "temp_view", "other_user", "stop"]
SMOKE = ["sql", "other_user", "stop"]
REFUSAL = "belongs to another user"


def python_of(client):
    name, venv, requirements = next(c for c in CLIENTS if c[0] == client)
    if venv is None:
        return sys.executable
    path = os.path.join(VENVS, venv)
    stamp = os.path.join(path, ".sparkgate-requirements")
    wanted = " ".join(requirements)
    if not (os.path.exists(stamp) and open(stamp).read() == wanted):
        print(f"compat: installing {name} into {path}", file=sys.stderr, flush=True)
        subprocess.run(["python3", "-m", "venv", path], check=True)
        subprocess.run([os.path.join(path, "bin", "pip"), "install", "-q", *requirements], check=True)
        with open(stamp, "w") as f:
            f.write(wanted)
    return os.path.join(path, "bin", "python")


def jvm_home(client):
    version = dict(JVM_CLIENTS)[client]
    return jvm_work.spark_home(version, VENVS, python=sys.executable)


def run_client(client, url, other_url, checks, ca, timeout):
    """The work of one client on one path; a run past `timeout` is a hang, reported as such."""
    started = time.time()
    if client in dict(JVM_CLIENTS):
        results = jvm_work.run(jvm_home(client), url, other_url, checks, ca, tempfile.mkdtemp(prefix="compat-jvm-"), timeout)
        results["elapsed"] = round(time.time() - started, 1)
        return results
    args = {"url": url, "other_url": other_url, "checks": checks}
    env = {**os.environ, "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": ca}
    env.pop("SPARK_CONNECT_AUTHENTICATE_TOKEN", None)
    env.pop("PYTHONPATH", None)
    try:
        out = subprocess.run([python_of(client), os.path.join(HERE, "client_work.py"), json.dumps(args)], capture_output=True, text=True,
                             timeout=timeout, env=env, cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        return {"session": {"ok": False, "error": f"no answer within {timeout} s (a hang)"}}
    lines = out.stdout.strip().splitlines()
    try:
        results = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"session": {"ok": False, "error": f"the client exited with {out.returncode}: {' '.join(out.stderr.split())[-400:]}"}}
    results["elapsed"] = round(time.time() - started, 1)
    return results


def spark_message(error):
    """Spark's message without the JVM stack trace it appends (the same on both paths, and pages long)."""
    return error.split(" JVM stacktrace:")[0]


def judge(checks, direct, gateway, reference, sessions_left):
    """The verdict for one pair: per check, what each path did and whether Sparkgate kept the rule."""
    verdict = {"broken": [], "limits": [], "notes": []}
    if "session" in gateway:
        verdict["broken"].append(f"through Sparkgate: {gateway['session']['error']}")
        return verdict
    if "session" in direct:
        # The client cannot use Spark directly at all (an older JVM client's token header): Spark's own limit.
        verdict["direct_fails"] = spark_message(direct["session"]["error"])
    for name in checks:
        d, g = direct.get(name), gateway.get(name)
        if g is None:
            verdict["broken"].append(f"{name}: no result through Sparkgate")
            continue
        if name == "other_user":
            # Spark alone keys sessions by user and id, so another user naming the id gets a session of their
            # own; Sparkgate refuses the foreign id outright.
            if g["ok"] or REFUSAL not in g["error"]:
                verdict["broken"].append(f"other_user: Sparkgate did not refuse another user's session id ({g.get('error') or g.get('value')})")
            continue
        expected = d if d is not None and d["ok"] else reference.get(name)
        if g["ok"]:
            if expected is not None and expected["ok"] and expected["value"] != g["value"]:
                verdict["broken"].append(f"{name}: through Sparkgate {g['value']}, directly {expected['value']}")
            elif d is not None and not d["ok"]:
                verdict["notes"].append(f"{name}: fails directly ({d['error']}), works through Sparkgate")
        elif d is not None and d["ok"]:
            verdict["broken"].append(f"{name}: works directly, fails through Sparkgate: {g['error']}")
        else:
            verdict["limits"].append(f"{name}: {spark_message(g['error'])}")
    if sessions_left:
        if gateway.get("client", {}).get("value", "").startswith("3."):
            verdict["limits"].append(f"stop: PySpark 3.5 has no ReleaseSession; its session stays listed until sessions.idle_session_seconds ({sessions_left} left)")
        else:
            verdict["broken"].append(f"stop: {sessions_left} session(s) still in /v1/sessions after spark.stop()")
    return verdict


def cell(verdict, checks):
    if verdict["broken"]:
        return "**broken by Sparkgate**"
    direct = "; fails directly (Spark's own limit)" if verdict.get("direct_fails") else ""
    if verdict["limits"]:
        return f"works, except Spark's own limits ({', '.join(sorted({l.split(':')[0] for l in verdict['limits']}))}){direct}"
    return f"works ({len(checks)}/{len(checks)} checks){direct}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ci", action="store_true", help="the newest pair in full, every other pair a smoke subset")
    ap.add_argument("--write", action="store_true", help="rewrite docs/compatibility.md and the README's matrix")
    ap.add_argument("--clients", nargs="*", help="only these clients (names as in the matrix)")
    ap.add_argument("--servers", nargs="*", help="only these servers")
    ap.add_argument("--install", action="store_true", help="only install the clients' venvs")
    args = ap.parse_args()
    clients = [c[0] for c in CLIENTS if not args.clients or c[0] in args.clients]
    jvm_clients = [c for c, _ in JVM_CLIENTS if (not args.clients or c in args.clients) and (not args.ci or c == JVM_CI[0])]
    servers = [s for s in SERVERS if not args.servers or s[0] in args.servers]
    newest = (CLIENTS[4][0], SERVERS[-1][0])

    for client in clients:
        python_of(client)  # every venv before any server starts: installs are slow, servers idle meanwhile
    for client in jvm_clients:
        jvm_home(client)
    if args.install:
        return 0

    workdir = tempfile.mkdtemp(prefix="sparkgate-compat-")
    material = harness.Material(workdir)
    backend_token = "compat-" + uuid.uuid4().hex
    os.environ["SUITE_BACKEND_TOKEN"] = backend_token

    results, verdicts = {}, {}
    started = time.time()

    def record(client, server_name, checks, direct, through, verdict, full):
        results[(client, server_name)] = {"checks": checks, "direct": direct, "sparkgate": through}
        verdicts[(client, server_name)] = verdict
        mark = "BROKEN" if verdict["broken"] else "ok"
        print(f"compat: {client} x {server_name} ({'full' if full else 'smoke'}): {mark} "
              f"(direct {direct.get('elapsed', '-')} s, through Sparkgate {through.get('elapsed', '-')} s)", file=sys.stderr, flush=True)
        for line in verdict["broken"] + verdict["limits"] + verdict["notes"]:
            print(f"    {line}", file=sys.stderr, flush=True)
    for server_name, server_client in servers:
        spark = harness.SparkServer(workdir, backend_token, python=python_of(server_client), driver_memory="2g")
        gateway = harness.Gateway(material, material.base_config(spark.endpoint), name=f"compat-{server_name.split()[-1]}")
        try:
            # The newest client first on each server: its direct results are the reference where an older
            # client's own direct run fails.
            ordered = sorted(clients, key=lambda c: c != newest[0])
            reference = {}
            for client in ordered:
                full = not args.ci or (client, server_name) == newest
                checks = FULL if full else SMOKE
                timeout = 600 if full else 180
                tag = uuid.uuid4().hex[:6]
                user, other = f"ann-{tag}", f"bo-{tag}"
                credential = f"authorization=Bearer%20{backend_token}" if client in TOKEN_ONLY_OVER_TLS else f"token={backend_token}"
                direct = run_client(client, f"sc://localhost:{spark.port}/;{credential};user_id={user}",
                                    f"sc://localhost:{spark.port}/;{credential};user_id={other}", checks, material.ca, timeout)
                through = run_client(client, gateway.url(material.token(user)), gateway.url(material.token(other)), checks, material.ca, timeout)
                if client == newest[0]:
                    reference = direct
                left = 0
                if "stop" in checks:
                    time.sleep(0.5)  # a release in flight when the client exits
                    status, body = gateway.admin(f"/v1/sessions?user={user}")
                    left = len(json.loads(body)["sessions"]) if status == 200 else -1
                verdict = judge(checks, direct, through, reference, left)
                record(client, server_name, checks, direct, through, verdict, full)
            for client in jvm_clients:
                if args.ci and (client, server_name) != JVM_CI:
                    continue
                tag = uuid.uuid4().hex[:6]
                user, other, session = f"jan-{tag}", f"jbo-{tag}", str(uuid.uuid4())
                # Both users name one session id: directly Spark gives the other user a session of its own;
                # Sparkgate refuses it. Directly as "localhost": with a token, the JVM client insists on TLS
                # (which Spark Connect does not serve) for every other host, and there sends its token as
                # `Authorization` whatever its version.
                direct = run_client(client, f"sc://localhost:{spark.port}/;token={backend_token};user_id={user};session_id={session}",
                                    f"sc://localhost:{spark.port}/;token={backend_token};user_id={other};session_id={session}", JVM_FULL, material.ca, 300)
                through = run_client(client, gateway.url(material.token(user), session_id=session), gateway.url(material.token(other), session_id=session),
                                     JVM_FULL, material.ca, 300)
                time.sleep(0.5)
                status, body = gateway.admin(f"/v1/sessions?user={user}")
                left = len(json.loads(body)["sessions"]) if status == 200 else -1
                record(client, server_name, JVM_FULL, direct, through, judge(JVM_FULL, direct, through, {}, left), True)
        finally:
            gateway.close()
            spark.close()

    table = render(clients + jvm_clients, [s[0] for s in servers], verdicts, results)
    print(table)
    print(f"compat: {len(verdicts)} pairs in {time.time() - started:.0f} s", file=sys.stderr)
    if args.write:
        # A run of some clients (--clients) replaces their rows and keeps every other client's.
        write_docs(table, ci=args.ci, only=clients + jvm_clients if args.clients else None)
    return 1 if any(v["broken"] for v in verdicts.values()) else 0


def render(clients, servers, verdicts, results):
    lines = ["| client | " + " | ".join(servers) + " |", "|---|" + "---|" * len(servers)]
    for client in clients:
        cells = []
        for server in servers:
            v = verdicts.get((client, server))
            cells.append("—" if v is None else cell(v, results[(client, server)]["checks"]))
        lines.append(f"| {client} | " + " | ".join(cells) + " |")
    details = []
    for (client, server), v in sorted(verdicts.items()):
        if v.get("direct_fails"):
            details.append(f"- {client} x {server}: directly against Spark: {v['direct_fails']}")
        for line in v["broken"] + v["limits"] + v["notes"]:
            details.append(f"- {client} x {server}: {line}")
    return "\n".join(lines + ([""] + details if details else []))


BEGIN, END = "<!-- compat-matrix:begin (scripts/compat --write) -->", "<!-- compat-matrix:end -->"


def write_docs(table, ci, only=None):
    """The whole result in docs/compatibility.md; the matrix alone in the README. A CI-size run says so: its
    cells other than the newest pair's count the smoke checks only. With `only`, the rows and details of those
    clients are replaced and the others kept, and the stamp says which rows are from when."""
    stamp = time.strftime("%Y-%m-%d")
    size = " (the newest pair in full, every other pair on sql, other_user and stop)" if ci else ""
    docs = os.path.join(ROOT, "docs", "compatibility.md")
    heading = f"Measured by `scripts/compat{' --ci' if ci else ''}` on {stamp}{size}"
    if only is not None:
        heading, table = merged(docs, table, only, stamp)
    matrix = table.split("\n\n")[0]
    for path, body in ((docs, table), (os.path.join(ROOT, "README.md"), matrix)):
        text = open(path).read()
        start, end = text.index(BEGIN), text.index(END) + len(END)
        with open(path, "w") as f:
            f.write(text[:start] + f"{BEGIN}\n{heading}:\n\n{body}\n{END}" + text[end:])


def merged(docs, table, only, stamp):
    """The documented matrix with the rows of `only` replaced by this run's (in the matrix's client order)."""
    text = open(docs).read()
    old = text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip().split("\n")
    old_heading, old_body = old[0].rstrip(":"), "\n".join(old[2:])
    old_rows, old_details = split(old_body)
    new_rows, new_details = split(table)
    order = [c[0] for c in CLIENTS] + [c[0] for c in JVM_CLIENTS]

    def client_of(row):
        return row.split("|")[1].strip()

    rows = {client_of(r): r for r in old_rows[2:]}
    rows.update({client_of(r): r for r in new_rows[2:]})
    details = [d for d in old_details if not any(d.startswith(f"- {c} x ") for c in only)] + new_details
    body = "\n".join(new_rows[:2] + [rows[c] for c in order if c in rows])
    if details:
        body += "\n\n" + "\n".join(sorted(details, key=lambda d: order.index(d[2:].split(" x ")[0])))
    return f"{old_heading}; {', '.join(only)} on {stamp}", body


def split(table):
    """A rendered table's rows and its detail lines."""
    matrix, _, details = table.partition("\n\n")
    return matrix.split("\n"), [d for d in details.split("\n") if d]

if __name__ == "__main__":
    sys.exit(main())
