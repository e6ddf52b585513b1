"""Engines on demand shared by every replica (one engine per share key over all of them, sessions served
from any replica, limits and idleness counted over all, an engine's death seen by all), and warm engines
that answer a new tenant's first call without a launch. Real LakeSail Sail engines, a real redis-server."""
import os
import signal
import threading
import time
import uuid

import grpc
import pytest

import harness
from test_launch import SAIL, alive, config_call, engine_dir, engines, pool_config, release, sail_config, wait_for
from test_observability import samples, value

HEARTBEAT = 1.0


@pytest.fixture(scope="module")
def redis(material):
    server = harness.RedisServer(material.dir, password="replicas-" + os.urandom(8).hex())
    yield server
    server.close()


def shared_pool(material, redis, **launch):
    config = sail_config(material, **{"idle_seconds": 3, "max_engines": 2, "work_dir": engine_dir(), "advertise_host": "127.0.0.1", **launch})
    config["state"] = harness.shared_state(material, redis, heartbeat_seconds=HEARTBEAT)
    return config


def all_engines(*gateways):
    return [e for gw in gateways for e in engines(gw)]


def launches(gw):
    return value(samples(gw), "sparkgate_engine_launches_total", backend="engines", result="ready")


def test_replicas_share_one_launch_pool(redis, material, make_gateway, connect):
    config = shared_pool(material, redis)
    a = make_gateway(config, name="pool-a")
    b = make_gateway(config, name="pool-b")
    token, session = material.token("ursula"), str(uuid.uuid4())

    # Concurrent first calls of one tenant through both replicas start one engine.
    results = []
    calls = [threading.Thread(target=lambda gw=gw: results.append(config_call(gw, token, session))) for gw in (a, b, a, b)]
    for t in calls:
        t.start()
    for t in calls:
        t.join(60)
    assert len(results) == 4
    [engine] = all_engines(a, b)
    assert launches(a) + launches(b) == 1

    # Its sessions work through either replica: a view made through one is read through the other.
    via_a = connect(a.url(token, session_id=session))
    via_a.range(4).createOrReplaceTempView("ursulas")
    via_b = connect(b.url(token, session_id=session))
    assert via_b.sql("SELECT count(*) AS n FROM ursulas").collect()[0].n == 4

    # max_engines (2) holds over both replicas.
    config_call(b, material.token("victor"), str(uuid.uuid4()))
    with pytest.raises(grpc.RpcError) as info:
        config_call(a, material.token("wanda"), str(uuid.uuid4()))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_engines (2)" in info.value.details()
    assert len(all_engines(a, b)) == 2

    # The engine's death is seen by both: each replica tells the session to start over.
    os.killpg(engine["pid"], signal.SIGKILL)
    for spark in (via_a, via_b):
        with pytest.raises(Exception, match="start a new session"):
            spark.range(1).count()
    wait_for(lambda: engine["id"] not in [e["id"] for e in all_engines(a, b)], 10, "the dead engine to leave the list")


def test_idleness_counts_every_replicas_sessions(redis, material, make_gateway):
    config = shared_pool(material, redis, idle_seconds=2)
    a = make_gateway(config, name="idle-a")
    b = make_gateway(config, name="idle-b")
    token = material.token("yara")
    on_a, on_b = str(uuid.uuid4()), str(uuid.uuid4())
    config_call(a, token, on_a)
    config_call(b, token, on_b)  # the same engine (share: user), a session held by the other replica
    [engine] = all_engines(a, b)
    release(a, token, on_a)
    # The engine's own replica holds no session now, the other still does: it must not stop.
    time.sleep(2 + 3 * HEARTBEAT)
    assert [e["id"] for e in all_engines(a, b)] == [engine["id"]], "an engine stopped while another replica's session used it"
    release(b, token, on_b)
    wait_for(lambda: all_engines(a, b) == [], 15, "the engine to stop once no replica holds a session")
    wait_for(lambda: not alive(engine["pid"]), 10, "its process to exit")


def test_a_warm_engine_answers_a_new_tenants_first_call(material, make_gateway, measure):
    # The command sleeps 3 s before Sail starts: a launch is slow, a warm engine is not.
    command = ["bash", "-c", 'sleep 3; exec "$0" spark server --ip 127.0.0.1 --port "$1"', SAIL, "{port}"]
    work_dir = engine_dir()
    gw = make_gateway(pool_config(material, command, warm_engines=1, max_engines=3, work_dir=work_dir), name="warm")
    wait_for(lambda: [e for e in engines(gw) if e["warm"] and e["state"] == "ready"], 30, "a warm engine")
    started = time.time()
    config_call(gw, material.token("zoe"), str(uuid.uuid4()))
    first_call = time.time() - started
    listed = engines(gw)
    taken = [e for e in listed if e["share_key"] == "user:analytics/zoe"]
    assert len(taken) == 1 and not taken[0]["warm"]
    # A replacement warm engine starts in the background.
    wait_for(lambda: [e for e in engines(gw) if e["warm"] and e["state"] == "ready"], 30, "a replacement warm engine")
    started = time.time()
    config_call(gw, material.token("zack"), str(uuid.uuid4()))
    second_call = time.time() - started
    line = f"warm engines: a new tenant's first call took {first_call:.2f} s and {second_call:.2f} s (a launch here takes over 3 s)"
    print(line)
    measure(line)
    assert first_call < 2 and second_call < 2
    assert value(samples(gw), "sparkgate_engines_warm", backend="engines") >= 0

    # Shutting down while a replacement warm engine starts leaves no engine behind, nor starts a new one.
    wait_for(lambda: [e for e in engines(gw) if e["warm"] and e["state"] == "starting"], 10, "a replacement warm engine starting")
    gw.close()
    wait_for(lambda: not processes_in(work_dir), 10, "every engine process to exit with the gateway")


def processes_in(work_dir):
    """Processes whose working directory is under `work_dir` (engines run in their own directory there)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(work_dir):
                found.append(int(pid))
        except OSError:
            pass
    return found
