"""Forwarding core: every RPC kind through Sparkgate, exactly, against a real Spark Connect 4.3 server."""
import os
import threading
import time
import uuid

import grpc
import pytest

import harness


def test_collect_sql_and_groupby(gateway, material, connect):
    spark = connect(gateway.url(material.token()))
    rows = spark.range(100).filter("id % 3 = 0").groupBy((spark.range(1).id * 0).alias("x") if False else "id").count().collect()
    assert sorted(r["id"] for r in rows) == list(range(0, 100, 3))
    grouped = spark.range(1000).selectExpr("id % 7 as k").groupBy("k").count().orderBy("k").collect()
    assert [(r["k"], r["count"]) for r in grouped] == [(k, len(range(k, 1000, 7))) for k in range(7)]
    assert spark.sql("select 40 + 2 as answer, 'gateway' as via").collect()[0].asDict() == {"answer": 42, "via": "gateway"}
    assert spark.range(5).schema.fieldNames() == ["id"]  # AnalyzePlan


def test_ten_million_row_arrow_is_exact_and_reattaches(spark, gateway, material, backend_token, connect, measure):
    """A >= 10M-row toArrow through Sparkgate equals the direct path; the server cuts the stream every
    second (senderMaxStreamDuration=1s), so the result crosses several ReattachExecute calls."""
    import pyarrow.compute as pc
    n = 10_000_000
    query = lambda s: s.range(n).selectExpr("id", "id * 3 as b", "cast(id as double) / 7 as c")

    direct = connect(f"sc://localhost:{spark.port}/;token={backend_token}")
    t0 = time.time()
    expected = query(direct).toArrow()
    direct_seconds = time.time() - t0

    client = connect(gateway.url(material.token()))
    t0 = time.time()
    got = query(client).toArrow()
    gateway_seconds = time.time() - t0

    assert got.num_rows == expected.num_rows == n
    for column in ["id", "b", "c"]:
        assert pc.sum(got[column]).as_py() == pc.sum(expected[column]).as_py()
    assert got.equals(expected)
    lines = [l for l in gateway.audit_lines() if l.get("session_id") == str(client.session_id)]
    assert any(l["method"] == "ReattachExecute" for l in lines), "the stream was never reattached"
    streamed_rows = sum(l["rows"] for l in lines if l["method"] in ("ExecutePlan", "ReattachExecute"))
    assert streamed_rows >= n
    measure(f"10M-row toArrow (3 columns, reattached every second): direct {direct_seconds:.2f} s, through Sparkgate (debug build) {gateway_seconds:.2f} s")


def test_create_dataframe_over_the_artifact_path(gateway, material, connect):
    """A 72 MB pandas frame is above PySpark's 64 MB local-relation cache threshold, so it travels as a
    client-streamed AddArtifacts upload before the plan refers to it."""
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(7)
    pdf = pd.DataFrame({"a": np.arange(3_000_000, dtype="int64"), "b": rng.random(3_000_000), "c": rng.random(3_000_000)})
    assert pdf.memory_usage(index=False).sum() >= 72_000_000
    spark = connect(gateway.url(material.token()))
    df = spark.createDataFrame(pdf)
    row = df.selectExpr("count(*) as n", "sum(a) as sa", "sum(b) as sb").collect()[0]
    assert row["n"] == len(pdf)
    assert row["sa"] == int(pdf["a"].sum())
    assert abs(row["sb"] - float(pdf["b"].sum())) < 1e-6
    uploads = [l for l in gateway.audit_lines() if l["method"] == "AddArtifacts" and l.get("session_id") == str(spark.session_id)]
    assert uploads and all(l["status"] == "OK" for l in uploads)
    assert sum(l["request_bytes"] for l in uploads) > 60_000_000


def test_add_artifact_used_by_a_python_udf(gateway, material, connect, tmp_path):
    module = tmp_path / "sg_plus_module.py"
    module.write_text("def plus(x):\n    return x + 1000\n")
    spark = connect(gateway.url(material.token()))
    spark.addArtifacts(str(module), pyfile=True)
    from pyspark.sql.functions import udf

    @udf("long")
    def plus(x):
        import sg_plus_module
        return sg_plus_module.plus(x)

    assert [r[0] for r in spark.range(4).select(plus("id")).collect()] == [1000, 1001, 1002, 1003]


def test_interrupt_all_stops_a_long_query(gateway, material, connect):
    """The query would take about two minutes; interruptAll must end it within seconds. The interrupt is
    sent once Spark reports progress (execution_progress through the gateway), so the job is running."""
    spark = connect(gateway.url(material.token()))
    running = threading.Event()
    spark.registerProgressHandler(lambda stages, inflight_tasks, operation_id, done: running.set() if inflight_tasks else None)
    failure = {}

    def run():
        try:
            spark.range(0, 4 * 10**10, 1, 2).selectExpr("max(id % 7)").collect()
        except Exception as e:  # the query must end with an error, not a result
            failure["error"] = e

    t = threading.Thread(target=run)
    t.start()
    assert running.wait(60), "Spark never reported the job running"
    interrupted_at = time.time()
    interrupted = spark.interruptAll()
    t.join(60)
    assert not t.is_alive()
    assert time.time() - interrupted_at < 30
    assert len(interrupted) == 1
    assert "cancel" in str(failure.get("error")).lower() or "interrupt" in str(failure.get("error")).lower()


def test_spark_errors_pass_through_with_their_error_class(gateway, material, connect):
    from pyspark.errors import PySparkException
    spark = connect(gateway.url(material.token()))
    with pytest.raises(PySparkException) as info:
        spark.sql("select 1 / 0 as boom").collect()
    assert info.value.getCondition() == "DIVIDE_BY_ZERO"
    with pytest.raises(PySparkException) as info:
        spark.sql("select * from no_such_table_anywhere").collect()
    assert info.value.getCondition() == "TABLE_OR_VIEW_NOT_FOUND"


def test_stop_releases_the_session(gateway, material, connect):
    spark = connect(gateway.url(material.token(user="stopper")))
    spark.range(3).collect()
    sid = str(spark.session_id)
    status, body = gateway.admin("/v1/sessions?user=stopper")
    assert status == 200 and sid in body
    spark.stop()
    assert any(l["method"] == "ReleaseSession" and l.get("session_id") == sid and l["status"] == "OK" for l in gateway.audit_lines())
    status, body = gateway.admin("/v1/sessions?user=stopper")
    assert sid not in body


def test_unreachable_backend_is_unavailable_naming_it(material, make_gateway):
    dead = harness.free_port()
    gw = make_gateway(material.base_config(f"127.0.0.1:{dead}"), name="dead-backend")
    with pytest.raises(grpc.RpcError) as info:
        harness.grpc_call(gw, "Config", harness.config_get_request(str(uuid.uuid4()), "spark.sql.shuffle.partitions"), token=material.token())
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"backend 'local' (127.0.0.1:{dead}) is unreachable" in info.value.details()
    assert "connection refused" in info.value.details()


def test_mtls_refuses_a_client_without_a_certificate(spark, material, make_gateway):
    config = material.base_config(spark.endpoint)
    config["tls"]["client_ca"] = material.ca
    gw = make_gateway(config, name="mtls")
    request = harness.config_get_request(str(uuid.uuid4()), "spark.sql.shuffle.partitions")
    with pytest.raises(grpc.RpcError) as info:
        harness.grpc_call(gw, "Config", request, token=material.token(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails
    reply = harness.grpc_call(gw, "Config", request, token=material.token(), client_cert=True)
    from pyspark.sql.connect.proto import base_pb2 as pb
    response = pb.ConfigResponse.FromString(reply)
    assert response.session_id == request.session_id
    assert [p.key for p in response.pairs] == ["spark.sql.shuffle.partitions"]
    from prometheus_client.parser import text_string_to_metric_families
    status, text = gw.admin("/metrics")
    failures = [s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == "sparkgate_tls_handshake_failures_total"]
    assert failures and failures[0] >= 1
