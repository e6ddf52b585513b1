"""Engines on demand: backends that are pools of engines Sparkgate launches per user or per team.

Real engines: LakeSail Sail per user (it starts in about a second) and Spark Connect 4.3 per team.
"""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import grpc
import pytest

import harness

SAIL = os.environ.get("SPARKGATE_SAIL_BIN") or os.path.join(harness.ROOT, ".venv-sail", "bin", "sail")


def port_range(size=40):
    start = random.randrange(30000, 40000 - size)
    return f"{start}-{start + size - 1}"


def pool_config(material, command, **launch):
    config = material.base_config("127.0.0.1:1")
    settings = {"command": command, "share": "user", "ports": port_range(), "startup_timeout_seconds": 60, "idle_seconds": 3,
                "stop_grace_seconds": 5, "max_engines": 4, "work_dir": os.path.join(material.dir, "engines")}
    settings.update(launch)
    config["backends"] = {"engines": {"launch": settings}}
    config["defaults"]["backend"] = "engines"
    return config


def sail_config(material, **launch):
    return pool_config(material, [SAIL, "spark", "server", "--ip", "127.0.0.1", "--port", "{port}"], **launch)


def engines(gw):
    status, body = gw.admin("/v1/engines")
    assert status == 200, body
    return json.loads(body)["engines"]


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (its parent reaps it).
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def config_call(gw, token, session_id, timeout=60):
    """A Config call every engine answers OK (get_option of a key Sail does not know gives None)."""
    from pyspark.sql.connect.proto import base_pb2 as pb
    req = pb.ConfigRequest(session_id=session_id)
    req.user_context.user_id = "x"
    req.operation.get_option.keys.append("spark.app.name")
    return harness.grpc_call(gw, "Config", req, token=token, timeout=timeout)


def release(gw, token, session_id):
    from pyspark.sql.connect.proto import base_pb2 as pb
    req = pb.ReleaseSessionRequest(session_id=session_id)
    req.user_context.user_id = "x"
    harness.grpc_call(gw, "ReleaseSession", req, token=token)


def test_engine_per_user_isolated_and_stopped_when_idle(make_gateway, material, connect):
    config = sail_config(material)
    config["sessions"] = {"namespace_session_ids": False}  # the engines alone keep alice and bob apart
    gw = make_gateway(config, name="launch-sail")
    alice = connect(gw.url(material.token("alice")))
    bob = connect(gw.url(material.token("bob")))
    alice.range(5).createOrReplaceTempView("alice_only")
    assert alice.sql("select count(*) as n from alice_only").collect()[0]["n"] == 5
    with pytest.raises(Exception, match="(?i)alice_only"):
        bob.sql("select * from alice_only").collect()
    assert bob.range(7).count() == 7

    listed = {e["share_key"]: e for e in engines(gw)}
    assert set(listed) == {"user:analytics/alice", "user:analytics/bob"}
    a, b = listed["user:analytics/alice"], listed["user:analytics/bob"]
    assert a["pid"] != b["pid"] and a["port"] != b["port"]
    assert a["state"] == b["state"] == "ready"
    wait_for(lambda: [e["sessions"] for e in engines(gw)] == [1, 1], 5, "each engine to count its session")
    status, body = gw.admin("/v1/sessions?user=alice")
    assert status == 200 and [x["engine"] for x in json.loads(body)["sessions"]] == [a["id"]]
    assert alive(a["pid"]) and alive(b["pid"])

    # Sessions still open keep the engines; once released they stop after idle_seconds (3 s).
    time.sleep(4)
    assert len(engines(gw)) == 2
    alice.stop()
    bob.stop()
    wait_for(lambda: engines(gw) == [], 15, "both engines to stop after idle_seconds")
    wait_for(lambda: not alive(a["pid"]) and not alive(b["pid"]), 10, "the engine processes to exit")
    _, metrics = gw.admin("/metrics")
    assert 'sparkgate_engine_launches_total{backend="engines",result="ready"} 2' in metrics
    assert 'sparkgate_engines{backend="engines",state="ready"} 0' in metrics


def test_max_engines_refuses_clearly_and_frees_slots_as_engines_idle(make_gateway, material):
    gw = make_gateway(sail_config(material, max_engines=4, idle_seconds=2), name="launch-limit")
    users = [f"user{i}" for i in range(10)]
    tokens = {u: material.token(u) for u in users}
    sessions = {u: str(uuid.uuid4()) for u in users}
    results = {}

    def first_call(user, n):
        try:
            config_call(gw, tokens[user], sessions[user])
            results[(user, n)] = "OK"
        except grpc.RpcError as e:
            results[(user, n)] = (e.code(), e.details())

    # Every user at once, and user0 three times: concurrent first calls share one launch.
    threads = [threading.Thread(target=first_call, args=(u, 0)) for u in users]
    threads += [threading.Thread(target=first_call, args=("user0", n)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = sorted({u for (u, _), r in results.items() if r == "OK"})
    refused = {u: r for (u, _), r in results.items() if r != "OK"}
    assert len(ok) == 4, {k: v for k, v in results.items() if v == "OK" or v[0] != grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert all(r[0] == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_engines (4)" in r[1] for r in refused.values()), refused
    running = engines(gw)
    assert len(running) == 4 and {e["share_key"] for e in running} == {f"user:analytics/{u}" for u in ok}
    if "user0" in ok:
        assert [results[("user0", n)] for n in (0, 1, 2)] == ["OK"] * 3
    _, metrics = gw.admin("/metrics")
    assert 'sparkgate_engine_launches_total{backend="engines",result="ready"} 4' in metrics

    # The four release their sessions; their engines go idle and stop, and a refused user gets one.
    for u in ok:
        release(gw, tokens[u], sessions[u])
    late = next(u for u in users if u not in ok)
    wait_for(lambda: len(engines(gw)) == 0, 15, "idle engines to stop")
    config_call(gw, tokens[late], sessions[late])
    assert [e["share_key"] for e in engines(gw)] == [f"user:analytics/{late}"]
    release(gw, tokens[late], sessions[late])


def test_an_operator_stops_an_engine_and_its_sessions_are_told(make_gateway, material, connect):
    gw = make_gateway(sail_config(material, idle_seconds=600), name="launch-delete")
    erin = connect(gw.url(material.token("erin")))
    erin.range(3).createOrReplaceTempView("erin_view")
    [engine] = engines(gw)
    assert gw.admin("/v1/engines/no-such-engine", method="DELETE")[0] == 404
    assert gw.admin(f"/v1/engines/{engine['id']}", method="DELETE", token=None)[0] == 401
    status, body = gw.admin(f"/v1/engines/{engine['id']}", method="DELETE")
    assert status == 200 and json.loads(body) == {"stopping": engine["id"]}
    wait_for(lambda: engines(gw) == [], 15, "the engine to stop")
    assert not alive(engine["pid"])
    with pytest.raises(Exception, match="start a new session"):
        erin.sql("select * from erin_view").collect()
    erin.stop()
    again = connect(gw.url(material.token("erin")))
    assert again.range(4).count() == 4
    [relaunched] = engines(gw)
    assert relaunched["id"] != engine["id"]


@pytest.mark.parametrize("command, expected", [
    (["sh", "-c", "echo 'engine: cannot bind, giving up' >&2; exit 3", "{port}"], r"exited with status 3 before it became ready.*its log is kept at .*engines-last-failure\.log"),
    (["sleep", "600", "{port}"], r"did not become ready within startup_timeout_seconds \(2\)"),
    (["/nonexistent/engine", "{port}"], r"could not start"),
])
def test_failed_launch_is_unavailable_with_the_reason(make_gateway, material, command, expected):
    import re
    config = pool_config(material, command, startup_timeout_seconds=2, work_dir=os.path.join(material.dir, f"engines-fail-{uuid.uuid4().hex[:8]}"))
    gw = make_gateway(config, name="launch-fail")
    started = time.time()
    with pytest.raises(grpc.RpcError) as e:
        config_call(gw, material.token("carol"), str(uuid.uuid4()), timeout=30)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value.details()
    assert re.search(expected, e.value.details()), e.value.details()
    assert "user:analytics/carol" in e.value.details()
    assert time.time() - started < 8
    wait_for(lambda: engines(gw) == [], 10, "the failed engine to leave the list")
    # A failed engine leaves no directory (a command that keeps failing must not fill the disk), only the
    # backend's last failure log.
    work_dir = gw.config["backends"]["engines"]["launch"]["work_dir"]
    wait_for(lambda: [d for d in os.listdir(work_dir) if os.path.isdir(os.path.join(work_dir, d))] == [], 10, "the engine directory to go")
    if "sh" in command:
        with open(os.path.join(work_dir, "engines-last-failure.log")) as f:
            assert "cannot bind, giving up" in f.read()


def test_a_process_that_takes_the_engines_port_gets_nothing(make_gateway, material, connect):
    """A local process binds the port Sparkgate chose while the engine is still starting: it never receives a
    connection (so never the token or a session), and the tenant gets a real engine on another port."""
    command = ["bash", "-c", 'sleep 3; exec "$0" spark server --ip 127.0.0.1 --port "$1"', SAIL, "{port}"]
    gw = make_gateway(pool_config(material, command, work_dir=engine_dir()), name="launch-squat")
    token, session = material.token("sam"), str(uuid.uuid4())
    outcome = {}
    threading.Thread(target=lambda: outcome.update(first=config_call(gw, token, session))).start()
    starting = wait_for(lambda: [e for e in engines(gw) if e["state"] == "starting"], 10, "the engine to start")[0]
    squatter = Squatter(starting["port"])
    try:
        wait_for(lambda: "first" in outcome, 60, "the first call's answer")
        spark = connect(gw.url(token, session_id=session))
        spark.range(3).createOrReplaceTempView("sams")
        assert spark.sql("SELECT count(*) AS n FROM sams").collect()[0].n == 3
        [engine] = engines(gw)
        assert engine["state"] == "ready" and engine["port"] != starting["port"] and engine["id"] != starting["id"]
        assert squatter.accepted == 0, "the squatter was sent something"
        _, metrics = gw.admin("/metrics")
        assert 'sparkgate_engine_port_conflicts_total{backend="engines"} 1' in metrics
        status, body = gw.admin("/v1/sessions?user=sam")
        assert [s["engine"] for s in json.loads(body)["sessions"]] == [engine["id"]]
    finally:
        squatter.close()


class Squatter:
    """A listener on someone else's port, counting who connects."""

    def __init__(self, port):
        import socket
        self.accepted = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        self.listener.close()


def engine_dir():
    """A work_dir other OS users can pass through (the suite's own directory is closed to them)."""
    import tempfile
    base = tempfile.mkdtemp(prefix="sparkgate-engines-")
    os.chmod(base, 0o711)
    return os.path.join(base, "engines")


def test_run_as_a_user_that_does_not_exist_is_unavailable_and_names_it(make_gateway, material):
    if os.geteuid() != 0:
        pytest.skip("run_as needs a gateway that runs as root (CI does)")
    gw = make_gateway(sail_config(material, run_as="sg-nobody-{team}_{user}", work_dir=engine_dir()), name="launch-nouser")
    with pytest.raises(grpc.RpcError) as e:
        config_call(gw, material.token("nina"), str(uuid.uuid4()), timeout=20)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "no OS user 'sg-nobody-analytics_nina'" in e.value.details()


# MARK: Spark 4.3, one engine per team, each as its own OS user

TEAM_USERS = {"analytics": "sg-analytics", "data-eng": "sg-data-eng"}


def ensure_os_user(name):
    import pwd
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--create-home", "--shell", "/usr/sbin/nologin", name], check=True)


@pytest.fixture(scope="module")
def spark_pool(material):
    import pyspark
    home = os.path.dirname(pyspark.__file__)
    command = ["bash", os.path.join(home, "sbin", "start-connect-server.sh"), "--driver-memory", "1g",
               "--conf", "spark.connect.grpc.binding.port={port}", "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
               "--conf", "spark.ui.enabled=false", "--conf", "spark.sql.shuffle.partitions=4", "--conf", "spark.sparkgate.team={team}"]
    config = pool_config(material, command, share="team", startup_timeout_seconds=180, idle_seconds=600, max_engines=3, max_engines_per_team=1,
                         work_dir=engine_dir())
    environment = {
        "SPARK_HOME": home, "SPARK_NO_DAEMONIZE": "1", "SPARK_LOG_DIR": "{work_dir}", "SPARK_PID_DIR": "{work_dir}",
        "SPARK_CONNECT_AUTHENTICATE_TOKEN": "{token}", "PYSPARK_PYTHON": sys.executable,
    }
    if os.geteuid() == 0:
        # Each team's driver and its Python workers run as the team's own OS user. The suite's venv python
        # lives under /root, which other users cannot enter: workers use the system's python3.11 with the
        # venv's packages.
        for user in TEAM_USERS.values():
            ensure_os_user(user)
        config["backends"]["engines"]["launch"]["run_as"] = "sg-{team}"
        site = next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix))
        environment.update(PYSPARK_PYTHON="/usr/bin/python3.11", PYTHONPATH=site)
    config["backends"]["engines"]["launch"]["environment"] = environment
    gw = harness.Gateway(material, config, name="launch-spark")
    yield gw
    gw.close()


def test_spark_engine_per_team_survives_the_other_teams_crash(spark_pool, material, connect):
    gw = spark_pool
    a = connect(gw.url(material.token("alice", team="analytics")))
    b = connect(gw.url(material.token("dave", team="data-eng")))
    assert a.conf.get("spark.sparkgate.team") == "analytics"
    assert b.conf.get("spark.sparkgate.team") == "data-eng"
    listed = {e["share_key"]: e for e in engines(gw)}
    assert set(listed) == {"team:analytics", "team:data-eng"}
    assert listed["team:analytics"]["pid"] != listed["team:data-eng"]["pid"]

    n = 60_000_000
    query = f"select sum(id) as s, count(*) as c from range({n}) where id % 7 <> 3 or id > 0"
    expected = (n * (n - 1) // 2, n)
    outcome = {}

    def run(name, spark):
        try:
            row = spark.sql(query).collect()[0]
            outcome[name] = (row["s"], row["c"])
        except Exception as e:  # the crashed team's query fails; which exception PySpark raises is its business
            outcome[name] = e

    threads = [threading.Thread(target=run, args=("a", a)), threading.Thread(target=run, args=("b", b))]
    for t in threads:
        t.start()
    time.sleep(1.5)
    os.killpg(listed["team:analytics"]["pid"], signal.SIGKILL)  # the team's driver dies mid-query
    for t in threads:
        t.join(180)
    assert outcome["b"] == expected, outcome
    assert isinstance(outcome["a"], Exception), outcome
    wait_for(lambda: "team:analytics" not in {e["share_key"] for e in engines(gw)}, 10, "the dead engine to leave the list")

    # The old session's state is gone with its engine: its calls say so; a new session gets a new engine.
    with pytest.raises(Exception, match="start a new session"):
        a.range(3).count()
    a.stop()  # ReleaseSession of a session whose engine died succeeds
    again = connect(gw.url(material.token("alice", team="analytics")))
    assert again.sql(query).collect()[0]["s"] == expected[0]
    relaunched = {e["share_key"]: e for e in engines(gw)}["team:analytics"]
    assert relaunched["pid"] != listed["team:analytics"]["pid"]
    assert b.range(10).count() == 10  # the other team's session never moved


def test_code_in_one_teams_engine_cannot_use_its_token_on_another(spark_pool, material, connect):
    gw = spark_pool
    a = connect(gw.url(material.token("alice", team="analytics")))
    b = connect(gw.url(material.token("dave", team="data-eng")))
    assert b.range(1).count() == 1  # data-eng's engine runs
    listed = {e["share_key"]: e for e in engines(gw)}
    own, other = listed["team:analytics"]["port"], listed["team:data-eng"]["port"]

    from pyspark.sql.functions import udf

    @udf("string")
    def try_token(port):
        # Runs inside analytics' engine, as its OS user, with its environment: the token is right there.
        import os as _os
        import grpc as _grpc
        from pyspark.sql.connect.proto import base_pb2 as _pb
        token = _os.environ["SPARK_CONNECT_AUTHENTICATE_TOKEN"]
        req = _pb.ConfigRequest(session_id="6c6b0f0e-6d1e-4a8e-9d53-3a1f5f7f9a01")
        req.user_context.user_id = "intruder"
        req.operation.get_all.SetInParent()
        with _grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary("/spark.connect.SparkConnectService/Config", request_serializer=None, response_deserializer=None)
            try:
                call(req.SerializeToString(), metadata=[("authorization", f"Bearer {token}")], timeout=20)
                return "OK"
            except _grpc.RpcError as e:
                return e.code().name

    rows = a.createDataFrame([(own,), (other,)], "port int").select(try_token("port").alias("r")).collect()
    assert [r["r"] for r in rows] == ["OK", "UNAUTHENTICATED"]


def test_a_teams_code_finds_no_credential_of_another_team_or_of_the_gateway(spark_pool, material, connect):
    """A Python UDF in analytics' engine looks everywhere a local user can: every process's environment and
    command line, the engines' work directories, the gateway's own files. Nothing it finds opens data-eng's
    engine, and none of the gateway's secrets is readable."""
    if os.geteuid() != 0:
        pytest.skip("engines run as their tenant's OS user only when the gateway can switch users (CI runs as root)")
    gw = spark_pool
    a = connect(gw.url(material.token("alice", team="analytics")))
    b = connect(gw.url(material.token("dave", team="data-eng")))
    assert b.range(1).count() == 1
    listed = {e["share_key"]: e for e in engines(gw)}
    other = listed["team:data-eng"]
    work_dir = gw.config["backends"]["engines"]["launch"]["work_dir"]
    gateway_secrets = [material.admin_token_file, os.path.join(material.keys, "suite-es256.key.pem"), os.path.join(material.certs, "server.key"),
                       gw.config_path]

    from pyspark.sql.functions import udf

    @udf("string")
    def look(paths):
        import glob as _glob
        import json as _json
        import os as _os
        import re as _re
        found, readable = set(), []
        sources = [p for d in _glob.glob("/proc/[0-9]*") for p in (d + "/environ", d + "/cmdline")]
        sources += [p for p in _glob.glob(paths.split("|")[0] + "/**", recursive=True) if _os.path.isfile(p)]
        sources += paths.split("|")[1:]
        for path in sources:
            try:
                with open(path, "rb") as f:
                    text = f.read(1 << 20).decode("utf-8", "replace")
            except OSError:
                continue
            if path in paths.split("|")[1:]:
                readable.append(path)
            found.update(_re.findall(r"[0-9a-f]{40,64}", text))
        return _json.dumps({"uid": _os.getuid(), "candidates": sorted(found), "readable": readable})

    import json as _json
    report = _json.loads(a.range(1).select(look(__import__("pyspark.sql.functions", fromlist=["lit"]).lit("|".join([work_dir] + gateway_secrets))).alias("r")).collect()[0]["r"])
    import pwd
    assert report["uid"] == pwd.getpwnam("sg-analytics").pw_uid  # the UDF runs as the team's user
    assert report["readable"] == [], f"the team's code read the gateway's secrets: {report['readable']}"
    # The UDF sees its own engine's token (and whatever else looks like one); none of it opens data-eng's engine.
    assert report["candidates"], "the UDF found not even its own token: the search looked nowhere"
    from pyspark.sql.connect.proto import base_pb2 as pb
    req = pb.ConfigRequest(session_id=str(uuid.uuid4()))
    req.user_context.user_id = "intruder"
    req.operation.get_all.SetInParent()
    opened = []
    with grpc.insecure_channel(f"127.0.0.1:{other['port']}") as ch:
        call = ch.unary_unary("/spark.connect.SparkConnectService/Config", request_serializer=None, response_deserializer=None)
        for candidate in report["candidates"]:
            try:
                call(req.SerializeToString(), metadata=[("authorization", f"Bearer {candidate}")], timeout=10)
                opened.append(candidate[:8])
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
    assert opened == [], f"{len(opened)} credentials found by analytics' code open data-eng's engine"
