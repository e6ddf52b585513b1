"""First request messages far larger than the HTTP/2 stream window (1 MiB): long SQL text, an inline local
relation, and one just under the configured message limit, all exact through Sparkgate against real Spark."""
import time

import grpc
import pytest

import harness


@pytest.mark.parametrize("size", [2_000_000, 20_000_000])
def test_long_sql_text_is_exact(gateway, material, connect, measure, size):
    spark = connect(gateway.url(material.token("long-sql")))
    text = "abcdefghij" * (size // 10)
    started = time.time()
    row = spark.sql(f"select length('{text}') as n, substr('{text}', {size - 4}, 5) as tail").collect()[0]
    assert row["n"] == size
    assert row["tail"] == text[-5:]
    measure(f"ExecutePlan with {size / 1e6:.0f} MB of SQL text (twice in the query): {time.time() - started:.2f} s through Sparkgate")


def test_inline_local_relation_over_20_mb_is_exact(gateway, material, connect):
    """Below the local-relation cache threshold a pandas frame travels inline, inside the plan of one message
    (Spark 4.3's default threshold is lower than this frame, so the test raises it for its session)."""
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(11)
    n = 1_400_000
    pdf = pd.DataFrame({"a": np.arange(n, dtype="int64"), "b": rng.random(n), "c": rng.random(n)})
    assert 30_000_000 < pdf.memory_usage(index=False).sum() < 64_000_000
    spark = connect(gateway.url(material.token("local-relation")))
    spark.conf.set("spark.sql.session.localRelationCacheThreshold", str(128 << 20))
    row = spark.createDataFrame(pdf).selectExpr("count(*) as n", "sum(a) as sa", "sum(b) as sb", "max(c) as mc").collect()[0]
    assert row["n"] == n
    assert row["sa"] == int(pdf["a"].sum())
    assert abs(row["sb"] - float(pdf["b"].sum())) < 1e-6
    assert row["mc"] == float(pdf["c"].max())
    executes = [l for l in gateway.audit_lines() if l.get("session_id") == str(spark.session_id) and l["method"] == "ExecutePlan"]
    assert max(l["request_bytes"] for l in executes) > 20_000_000  # one message of over 20 MB


def test_just_under_the_message_limit_passes_and_just_over_is_refused(spark, material, make_gateway, connect):
    limit = 8 << 20
    gw = make_gateway(material.base_config(spark.endpoint, max_message_bytes=limit), name="limit-8mib")
    session = connect(gw.url(material.token("near-limit")))
    # The ExecutePlan message carries the text plus a few hundred bytes of plan, ids and user context.
    text = "z" * (limit - 4096)
    assert session.sql(f"select length('{text}') as n").collect()[0]["n"] == len(text)
    sizes = [l["request_bytes"] for l in gw.audit_lines() if l.get("session_id") == str(session.session_id) and l["method"] == "ExecutePlan"]
    assert limit - 8192 < max(sizes) <= limit + 5
    from pyspark.errors import PySparkException
    with pytest.raises(PySparkException) as info:
        session.sql(f"select length('{'z' * (limit + 16)}') as n").collect()
    assert "RESOURCE_EXHAUSTED" in str(info.value)
    assert f"larger than max_message_bytes ({limit})" in str(info.value)
