"""Metrics, health, audit log, reload and graceful shutdown, with real PySpark traffic against real Spark 4.3."""
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest

import harness


def samples(gateway):
    from prometheus_client.parser import text_string_to_metric_families
    status, text = gateway.admin("/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics, name, **labels):
    return metrics.get((name, tuple(sorted(labels.items()))), 0)


def test_metrics_move_with_real_traffic(gateway, material, connect):
    before = samples(gateway)
    spark = connect(gateway.url(material.token("metrics-user")))
    assert spark.range(100_000).toArrow().num_rows == 100_000
    with pytest.raises(Exception):
        harness.grpc_call(gateway, "Config", harness.config_get_request(str(uuid.uuid4()), "x"), token="bad.token.here")
    time.sleep(0.2)
    after = samples(gateway)
    assert value(after, "sparkgate_rpcs_total", method="ExecutePlan", team="analytics", code="OK") > value(before, "sparkgate_rpcs_total", method="ExecutePlan", team="analytics", code="OK")
    assert value(after, "sparkgate_result_rows_total", team="analytics") - value(before, "sparkgate_result_rows_total", team="analytics") >= 100_000
    assert value(after, "sparkgate_result_bytes_total", team="analytics") > value(before, "sparkgate_result_bytes_total", team="analytics")
    assert value(after, "sparkgate_request_bytes_total", team="analytics") > value(before, "sparkgate_request_bytes_total", team="analytics")
    assert value(after, "sparkgate_auth_failures_total", reason="malformed_token") > value(before, "sparkgate_auth_failures_total", reason="malformed_token")
    assert value(after, "sparkgate_rpc_duration_seconds_count", method="ExecutePlan") > value(before, "sparkgate_rpc_duration_seconds_count", method="ExecutePlan")
    assert value(after, "sparkgate_first_response_seconds_count", method="ExecutePlan") > 0
    assert value(after, "sparkgate_build_info", version="0.1.0") == 1
    backend_up = [v for (n, labels), v in after.items() if n == "sparkgate_backend_up" and ("backend", "local") in labels]
    assert backend_up and max(backend_up) == 1
    assert value(after, "sparkgate_connections", state="open") >= 1
    # Labels stay bounded: no user or session id anywhere in the exposition.
    _, text = gateway.admin("/metrics")
    assert "metrics-user" not in text and str(spark.session_id) not in text


def test_normal_use_leaves_no_error_behind(spark, material, make_gateway, connect):
    """toPandas() then stop(): PySpark's late asynchronous ReleaseExecute calls reach a session Sparkgate has
    just released; Sparkgate answers them itself (releasing what is gone is done), so no error is counted.
    Every non-OK audit line says why."""
    gw = make_gateway(material.base_config(spark.endpoint), name="normal-use")
    for _ in range(3):
        session = connect(gw.url(material.token("pandas-user")))
        frame = session.range(0, 200_000, 1, 8).selectExpr("id", "id * 2 as b").toPandas()
        assert len(frame) == 200_000 and int(frame.b.sum()) == 2 * sum(range(200_000))
        session.stop()
    time.sleep(3)  # the release thread pool drains after stop()
    metrics = samples(gw)
    errors = {labels: v for (name, labels), v in metrics.items() if name == "sparkgate_rpcs_total" and dict(labels)["code"] != "OK" and v > 0}
    assert not errors, errors
    lines = gw.audit_lines()
    assert lines and all(l["reason"] for l in lines if l["status"] != "OK")
    answered = [l for l in lines if l.get("reason") == "already_released"]
    assert all(l["method"] == "ReleaseExecute" and l["status"] == "OK" for l in answered)


def test_metrics_pass_promtool(gateway):
    promtool = subprocess.run(["which", "promtool"], capture_output=True, text=True).stdout.strip()
    if not promtool:
        pytest.skip("promtool (Debian package prometheus) is not installed; prometheus_client parsed the same text above")
    _, text = gateway.admin("/metrics")
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_health_and_readiness(gateway, material, make_gateway):
    assert gateway.admin("/healthz") == (200, '{"status":"ok"}\n')
    status, body = gateway.admin("/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"
    config = material.base_config(f"127.0.0.1:{harness.free_port()}")
    config["backends"]["local"]["health"] = {"interval_seconds": 0.2, "timeout_seconds": 0.2, "unhealthy_after": 2}
    dead = make_gateway(config, name="not-ready")
    deadline = time.time() + 10
    while (status := dead.admin("/readyz"))[0] != 503:
        assert time.time() < deadline, "a gateway whose only backend endpoint is down stayed ready"
        time.sleep(0.1)
    assert "backend local has no healthy endpoint" in json.loads(status[1])["reasons"][0]


def test_audit_log_has_one_line_per_rpc_and_never_the_token(gateway, material, connect, backend_token):
    token = material.token("auditor", team="data-eng")
    spark = connect(gateway.url(token))
    spark.sql("select 'some query text 12345' as q").collect()
    spark.stop()
    lines = [l for l in gateway.audit_lines() if l.get("user") == "auditor"]
    assert {"Config", "ExecutePlan", "ReleaseSession"} <= {l["method"] for l in lines}
    for l in lines:
        for key in ["time", "user", "team", "session_id", "method", "status", "request_bytes", "result_bytes", "rows", "duration_ms", "client_type", "peer"]:
            assert key in l, key
    executes = [l for l in lines if l["method"] == "ExecutePlan"]
    assert all(l["operation_id"] and l["status"] == "OK" for l in executes)
    # spark.sql() runs a command (no rows), then collect() fetches the one row, on ExecutePlan or, as the
    # suite's Spark ends each result stream after 1 s, on a ReattachExecute.
    assert sum(l["rows"] for l in lines if l["method"] in ("ExecutePlan", "ReattachExecute")) == 1
    for path in [gateway.audit, gateway.log]:
        text = open(path).read()
        assert token not in text and token.split(".")[2] not in text
        assert backend_token not in text
        assert "some query text 12345" not in text


def test_reload_keeps_a_10m_row_stream_whole_and_applies_new_quotas(spark, material, make_gateway, connect):
    import pyarrow.compute as pc
    config = material.base_config(spark.endpoint)
    gw = make_gateway(config, name="reload")
    session = connect(gw.url(material.token("reloader")))
    result = {}

    def stream():
        table = session.range(10_000_000).selectExpr("id", "id * 2 as b").toArrow()
        result["rows"], result["sum"] = table.num_rows, pc.sum(table["b"]).as_py()

    t = threading.Thread(target=stream)
    t.start()
    time.sleep(2)
    # Reload with a quota change, over SIGHUP and over the admin API, while the result streams.
    config["teams"]["analytics"] = {"quotas": {"max_sessions_per_user": 1}}
    gw.write_config(config)
    gw.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert gw.admin("/v1/reload", method="POST")[0] == 200
    t.join(120)
    assert result == {"rows": 10_000_000, "sum": 10_000_000 * 9_999_999}
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException
    with pytest.raises(SparkConnectGrpcException) as info:
        connect(gw.url(material.token("reloader"))).range(1).collect()
    assert "allows 1 session per user" in str(info.value)
    # A bad configuration is refused; the running one stays; the failure is counted.
    with open(gw.config_path, "w") as f:
        f.write("listen: [broken\n")
    status, body = gw.admin("/v1/reload", method="POST")
    assert status == 422 and "not valid YAML" in body
    assert session.range(3).count() == 3
    m = samples(gw)
    assert value(m, "sparkgate_config_reloads_total", result="success") == 2
    assert value(m, "sparkgate_config_reloads_total", result="failure") == 1


def test_reload_swaps_the_tls_certificate(spark, material, make_gateway):
    config = material.base_config(spark.endpoint)
    gw = make_gateway(config, name="cert-reload")

    def serial():
        ctx = ssl.create_default_context(cafile=material.ca)
        with ssl.create_connection(("localhost", gw.port)) as sock, ctx.wrap_socket(sock, server_hostname="localhost") as tls:
            return tls.getpeercert()["serialNumber"]

    first = serial()
    fresh = os.path.join(gw.dir, "fresh")
    harness.run_cli("certs", "generate", "--out", fresh, "--host", "localhost")
    config["tls"] = {"certificate": os.path.join(fresh, "server.crt"), "private_key": os.path.join(fresh, "server.key")}
    gw.write_config(config)
    assert gw.admin("/v1/reload", method="POST")[0] == 200
    ctx = ssl.create_default_context(cafile=os.path.join(fresh, "ca.crt"))
    with ssl.create_connection(("localhost", gw.port)) as sock, ctx.wrap_socket(sock, server_hostname="localhost") as tls:
        assert tls.getpeercert()["serialNumber"] != first


def test_sigterm_drains_in_flight_streams_then_exits_zero(spark, material, make_gateway, connect):
    import pyarrow.compute as pc
    config = material.base_config(spark.endpoint, shutdown_grace_seconds=60)
    gw = make_gateway(config, name="drain")
    session = connect(gw.url(material.token("drainer")))
    session.range(1).collect()
    result = {}

    def stream():
        table = session.range(10_000_000).toArrow()
        result["rows"], result["sum"] = table.num_rows, pc.sum(table["id"]).as_py()

    t = threading.Thread(target=stream)
    t.start()
    time.sleep(1.5)
    gw.signal(signal.SIGTERM)
    time.sleep(0.5)
    # The listener is closed: a new connection is refused.
    import socket
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", gw.port), timeout=2).close()
    t.join(120)
    assert result == {"rows": 10_000_000, "sum": 10_000_000 * 9_999_999 // 2}
    assert gw.proc.wait(60) == 0


def test_sigterm_cancels_what_outlives_the_grace_period(spark, material, make_gateway, connect):
    config = material.base_config(spark.endpoint, shutdown_grace_seconds=2)
    gw = make_gateway(config, name="grace")
    sid = str(uuid.uuid4())
    session = connect(gw.url(material.token("lingerer"), session_id=sid))
    failure = {}

    def run():
        try:
            session.range(0, 10**13, 1, 2).selectExpr("max(id % 7)").collect()  # hours of work: it outlives the grace
        except Exception as e:
            failure["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    time.sleep(3)
    started = time.time()
    gw.signal(signal.SIGTERM)
    assert gw.proc.wait(30) == 0
    assert time.time() - started < 10
    log = open(gw.log).read()
    assert "draining: no new connections" in log and "grace period over; cancelling the calls still running" in log
    lines = [l for l in gw.audit_lines() if l.get("user") == "lingerer" and l["method"] in ("ExecutePlan", "ReattachExecute")]
    assert lines and not any(l["rows"] for l in lines), lines  # the result never completed
    # A stream open at the deadline is ended with UNAVAILABLE (the client retries elsewhere); one the client
    # opened as the connection closed is CANCELLED. Spark's reattach cycle can leave no stream open at that
    # instant, so the UNAVAILABLE line is not required, but nothing else may appear.
    assert all(l["status"] in ("OK", "UNAVAILABLE", "CANCELLED") for l in lines), lines
    assert all(l.get("reason") == "terminated" for l in lines if l["status"] == "UNAVAILABLE"), lines
    # The operation still runs on Spark (another replica could have reattached to it): stop it through a
    # fresh gateway, which computes the same backend session id without any shared state.
    again = make_gateway(config, name="grace-cleanup")
    assert connect(again.url(material.token("lingerer"), session_id=sid)).interruptAll()


def test_config_check_names_the_key_and_file(material, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(json.dumps(material.base_config("127.0.0.1:15002")))
    ok = harness.run_cli("config", "check", "--config", str(good), check=False)
    assert ok.returncode == 0 and "OK" in ok.stdout
    bad = tmp_path / "bad.yaml"
    config = material.base_config("127.0.0.1:15002")
    config["auth"]["keys"][0]["algorithm"] = "ES257"
    config["backends"]["local"]["endpionts"] = ["x"]
    bad.write_text(json.dumps(config))
    failed = harness.run_cli("config", "check", "--config", str(bad), check=False)
    assert failed.returncode == 1
    assert f"{bad}:" in failed.stderr
    assert "auth.keys[0].algorithm: 'ES257' is not one of" in failed.stderr
    assert "backends.local.endpionts: unknown key (did you mean 'endpoints'?)" in failed.stderr
    missing = material.base_config("127.0.0.1:15002")
    missing["tls"]["certificate"] = str(tmp_path / "nope.crt")
    bad.write_text(json.dumps(missing))
    failed = harness.run_cli("config", "check", "--config", str(bad), check=False)
    assert failed.returncode == 1 and "tls" in failed.stderr and "nope.crt" in failed.stderr


@pytest.mark.parametrize("taken", ["listen", "admin.listen"])
def test_a_taken_port_stops_the_gateway_naming_the_key(material, tmp_path, taken):
    """A port another process holds ends `serve` at once with exit code 1 and the key to change, whichever of
    the two listeners it is: never a gateway left running with one of them (it used to hang on the admin port)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        config = material.base_config(f"127.0.0.1:{harness.free_port()}")
        config["listen"] = f"127.0.0.1:{port if taken == 'listen' else harness.free_port()}"
        config.setdefault("admin", {})["listen"] = f"127.0.0.1:{port if taken == 'admin.listen' else harness.free_port()}"
        path = tmp_path / "sparkgate.yaml"
        path.write_text(json.dumps(config))
        started = time.time()
        served = subprocess.run([harness.BIN, "serve", "--config", str(path)], capture_output=True, text=True, timeout=60)
        elapsed = time.time() - started
    assert served.returncode == 1, served.stderr
    assert f"cannot listen on 127.0.0.1:{port} ({taken}): the address is already in use" in served.stderr
    assert elapsed < 15, f"took {elapsed:.1f} s to stop"
