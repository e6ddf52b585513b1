"""Per-team, per-user and per-session quotas, with real PySpark against real Spark 4.3. Sessions per user on
the ledger alone are checked in memory (QuotasInMemoryTests); here, PySpark's own cleanup of a refused session."""
import json
import os
import threading
import time
import uuid

import grpc
import pytest

import harness

LONG_QUERY_ROWS = 10**13  # hours of work (Spark runs max(id % 7) at ~1.5G rows/s): always interrupted


@pytest.fixture(scope="module")
def limited(spark, material):
    config = material.base_config(spark.endpoint)
    config["teams"] = {
        "one-op": {"quotas": {"max_concurrent_operations_per_session": 1}},
        "small-results": {"quotas": {"max_result_bytes_per_operation": 1 << 20}},
        "small-artifacts": {"quotas": {"max_artifact_bytes_per_session": 100 << 10}},
        "slow-rate": {"quotas": {"requests_per_second": 2, "request_burst": 3}},
        "short-ops": {"quotas": {"max_operation_seconds": 3}},
    }
    gw = harness.Gateway(material, config, name="quotas")
    yield gw
    gw.close()


def code(exc):
    return str(exc.getGrpcStatusCode())


def long_query(spark, rows=LONG_QUERY_ROWS):
    return spark.range(0, rows, 1, 2).selectExpr("max(id % 7) as m")


def wait_running(spark, timeout=60):
    """Waits until Spark reports the session's job running (execution_progress through the gateway)."""
    running = threading.Event()
    spark.registerProgressHandler(lambda stages, inflight_tasks, operation_id, done: running.set() if inflight_tasks else None)
    return running


def test_operations_per_session_refuses_the_second_and_frees_when_done(limited, material, connect):
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException
    spark = connect(limited.url(material.token("ops-user", team="one-op")))
    running = wait_running(spark)
    result = {}
    # A few seconds of work: the refusal below is the gateway's own and comes at once once Spark reports it running.
    first = threading.Thread(target=lambda: result.update(rows=long_query(spark, 5 * 10**9).collect()))
    first.start()
    assert running.wait(60)
    with pytest.raises(SparkConnectGrpcException) as info:
        spark.range(3).collect()
    assert "RESOURCE_EXHAUSTED" in code(info.value)
    assert "team one-op allows 1 concurrent operation per session; 1 is running" in str(info.value)
    first.join(180)
    assert result["rows"][0]["m"] == 6  # the first query finished exactly
    assert [r.id for r in spark.range(3).collect()] == [0, 1, 2]  # and its slot is free again

    # An interrupted operation frees its slot too.
    running.clear()
    failed = {}
    second = threading.Thread(target=lambda: failed.setdefault("error", _run(lambda: long_query(spark).collect())))
    second.start()
    assert running.wait(60)
    assert len(spark.interruptAll()) == 1
    second.join(60)
    assert failed.get("error") is not None
    assert spark.range(2).count() == 2


def _run(fn):
    try:
        fn()
        return None
    except Exception as e:
        return e


def test_a_refused_session_never_comes_back_as_a_held_slot(spark, material, make_gateway, connect):
    """After a max_sessions_per_user refusal, the client's own cleanup calls on the refused session must not
    register it: once the first session stops, a new one is admitted."""
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException
    config = material.base_config(spark.endpoint)
    config["teams"]["single"] = {"quotas": {"max_sessions_per_user": 1}}
    gw = make_gateway(config, name="single-session")
    token = material.token("solo", team="single")
    first = connect(gw.url(token))
    assert first.range(3).count() == 3
    refused = connect(gw.url(token))
    with pytest.raises(SparkConnectGrpcException) as info:
        refused.range(0, 10, 1, 2).collect()
    assert "allows 1 session per user" in str(info.value)
    refused.stop()  # PySpark's cleanup on the refused session: ReleaseExecute/ReleaseSession
    first.stop()
    sessions = json.loads(gw.admin("/v1/sessions?user=solo")[1])
    assert sessions["count"] == 0, sessions
    assert connect(gw.url(token)).range(4).count() == 4


def test_result_bytes_limit_ends_the_stream_and_cancels_the_spark_job(limited, spark, material, connect):
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException
    session = connect(limited.url(material.token("dave", team="small-results")))
    with pytest.raises(SparkConnectGrpcException) as info:
        session.range(0, 40_000_000, 1, 40).selectExpr("id", "id * 2 as b").toArrow()
    assert "RESOURCE_EXHAUSTED" in code(info.value)
    assert "team small-results allows 1 MiB of results per operation" in str(info.value)
    refused = [l for l in limited.audit_lines() if l.get("team") == "small-results" and l["status"] == "RESOURCE_EXHAUSTED"]
    assert refused and refused[0]["reason"] == "max_result_bytes_per_operation"
    op = refused[0]["operation_id"]
    deadline = time.time() + 30
    while time.time() < deadline:
        log = open(spark.log, errors="replace").read()
        if any(op in line and ("cancel" in line.lower() or "interrupt" in line.lower()) for line in log.splitlines()):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"Spark never cancelled operation {op}")
    assert session.range(5).count() == 5  # the session itself is still usable


def test_artifact_bytes_limit(limited, material, connect, tmp_path):
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException
    spark = connect(limited.url(material.token("erin", team="small-artifacts")))
    small = tmp_path / "small_module.py"
    small.write_text("X = 1\n" + "#" * 20_000 + "\n")
    spark.addArtifacts(str(small), pyfile=True)
    big = tmp_path / "big_module.py"
    big.write_text("Y = 2\n" + "#" * 200_000 + "\n")
    with pytest.raises(SparkConnectGrpcException) as info:
        spark.addArtifacts(str(big), pyfile=True)
    assert "RESOURCE_EXHAUSTED" in code(info.value)
    assert "team small-artifacts allows 100 KiB of artifacts per session" in str(info.value)


def test_rate_limit_refuses_a_burst_with_retry_info_and_recovers(limited, material, connect):
    token = material.token("frank", team="slow-rate")
    sid = str(uuid.uuid4())
    request = harness.config_get_request(sid, "spark.sql.shuffle.partitions")
    for _ in range(3):
        harness.grpc_call(limited, "Config", request, token=token)
    with pytest.raises(grpc.RpcError) as info:
        harness.grpc_call(limited, "Config", request, token=token)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "team slow-rate allows 2 requests per second per user (burst 3)" in info.value.details()
    details = dict(info.value.trailing_metadata()).get("grpc-status-details-bin")
    from google.rpc import status_pb2, error_details_pb2
    status = status_pb2.Status.FromString(details)
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert 0 < retry.retry_delay.ToMilliseconds() <= 500
    time.sleep(0.6)
    harness.grpc_call(limited, "Config", request, token=token)  # refilled
    # PySpark honours RetryInfo: a burst of calls all succeed, some after a retry.
    spark = connect(limited.url(token))
    values = [spark.conf.get("spark.sql.shuffle.partitions") for _ in range(6)]
    assert values == ["4"] * 6
    assert any(l.get("user") == "frank" and l["status"] == "RESOURCE_EXHAUSTED" for l in limited.audit_lines())


def test_operation_time_limit_interrupts_a_long_query(limited, material, connect):
    from pyspark.errors import PySparkException
    spark = connect(limited.url(material.token("gina", team="short-ops")))
    started = time.time()
    with pytest.raises(PySparkException) as info:
        long_query(spark).collect()
    elapsed = time.time() - started
    assert elapsed < 20, f"took {elapsed:.1f}s"
    assert "team short-ops allows 3 s per operation (max_operation_seconds)" in str(info.value)
    assert spark.range(3).count() == 3


def test_refusals_are_counted_by_team_and_limit(limited):
    from prometheus_client.parser import text_string_to_metric_families
    _, text = limited.admin("/metrics")
    counted = {(s.labels["team"], s.labels["limit"]): s.value for f in text_string_to_metric_families(text)
               for s in f.samples if s.name == "sparkgate_quota_rejections_total"}
    assert counted.get(("one-op", "max_concurrent_operations_per_session"), 0) >= 1
    assert counted.get(("slow-rate", "requests_per_second"), 0) >= 1
    assert counted.get(("short-ops", "max_operation_seconds"), 0) >= 1
