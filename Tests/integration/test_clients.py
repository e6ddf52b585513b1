"""What teams really run through Sparkgate, against a real Spark Connect 4.3: streaming with server-side
Python (`foreachBatch`) and a `StreamingQueryListener`, each compared with the same run straight to Spark;
streams that end with their session (killed by an operator, or at the end of its lifetime); a session that
outlives its token; a result stream the client replaced by reattaching; the header Spark's older JVM clients
send their token under."""
import json
import threading
import time
import uuid

import grpc
import pytest

import harness


def pb():
    from pyspark.sql.connect.proto import base_pb2
    return base_pb2


def direct_url(spark, backend_token, **params):
    return ";".join([f"sc://localhost:{spark.port}/", f"token={backend_token}"] + [f"{k}={v}" for k, v in params.items()])


def run_foreach_batch(session, table, batches):
    """A deterministic micro-batch stream (rate-micro-batch) whose foreachBatch, run by a Python worker in
    the engine, appends each batch to `table`; stops after `batches` batches. Returns the table's rows."""
    def sink(batch, batch_id):
        batch.selectExpr("value", f"{batch_id} AS batch").write.mode("append").saveAsTable(table)

    stream = (session.readStream.format("rate-micro-batch").option("rowsPerBatch", 5).option("numPartitions", 1).load()
              .writeStream.foreachBatch(sink).trigger(processingTime="200 milliseconds").start())
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            progress = stream.lastProgress
            if progress and progress["batchId"] >= batches - 1:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the stream did not reach {batches} batches: {stream.status}")
    finally:
        stream.stop()
    return sorted((r["batch"], r["value"]) for r in session.table(table).where(f"batch < {batches}").collect())


def test_foreach_batch_runs_server_side_python_the_same_through_sparkgate(spark, gateway, material, backend_token, connect):
    """foreachBatch's function runs in a Python worker inside Spark, which connects back to Spark with the
    session's server-side id: through Sparkgate that id is the namespaced one, and the worker still works."""
    tag = uuid.uuid4().hex[:8]
    direct = run_foreach_batch(connect(direct_url(spark, backend_token)), f"fb_direct_{tag}", 3)
    through = run_foreach_batch(connect(gateway.url(material.token("streamer"))), f"fb_gateway_{tag}", 3)
    assert direct == through and len(through) == 15, (direct, through)
    assert [b for b, _ in through] == sorted(b for b, _ in through) and {b for b, _ in through} == {0, 1, 2}


def listen(session, batches):
    """Runs a short stream with a StreamingQueryListener added; returns the events it heard, by kind."""
    from pyspark.sql.streaming import StreamingQueryListener
    heard = {"started": 0, "progress": 0, "terminated": 0, "ids": set()}
    done = threading.Event()

    class Listener(StreamingQueryListener):
        def onQueryStarted(self, event):
            heard["started"] += 1
            heard["ids"].add(str(event.id))

        def onQueryProgress(self, event):
            heard["progress"] += 1

        def onQueryIdle(self, event):
            pass

        def onQueryTerminated(self, event):
            heard["terminated"] += 1
            done.set()

    listener = Listener()
    session.streams.addListener(listener)
    try:
        query = (session.readStream.format("rate-micro-batch").option("rowsPerBatch", 5).load()
                 .writeStream.format("noop").trigger(processingTime="200 milliseconds").start())
        deadline = time.time() + 90
        while time.time() < deadline and (query.lastProgress is None or query.lastProgress["batchId"] < batches - 1):
            time.sleep(0.2)
        query.stop()
        done.wait(30)
    finally:
        session.streams.removeListener(listener)
    return {k: v for k, v in heard.items() if k != "ids"}, query.id


def test_a_streaming_query_listener_hears_the_same_events_through_sparkgate(spark, gateway, material, backend_token, connect):
    """A StreamingQueryListener's events reach the client over a long-lived ExecutePlan stream."""
    direct, _ = listen(connect(direct_url(spark, backend_token)), 3)
    through, _ = listen(connect(gateway.url(material.token("listener"))), 3)
    for heard in (direct, through):
        assert heard["started"] == 1 and heard["terminated"] == 1 and heard["progress"] >= 3, heard
    assert through["started"] == direct["started"] and through["terminated"] == direct["terminated"]


def table_rows(connect, gw, material, user, table):
    """The rows of a saved table, read through a session of its own."""
    return connect(gw.url(material.token(user))).table(table).count()


@pytest.mark.parametrize("ending", ["operator_kill", "lifetime"])
def test_a_sessions_stream_stops_with_its_session(ending, spark, material, make_gateway, connect):
    """The session's streaming query stops when the session ends, whether an operator killed it or it reached
    max_session_seconds: Sparkgate releases the session on Spark, and Spark stops the session's queries."""
    config = material.base_config(spark.endpoint)
    if ending == "lifetime":
        config["defaults"]["quotas"]["max_session_seconds"] = 8
    gw = make_gateway(config, name=f"stream-{ending}")
    table = f"stream_end_{ending}_{uuid.uuid4().hex[:8]}"
    session_id = str(uuid.uuid4())
    spark_session = connect(gw.url(material.token("runner"), session_id=session_id))

    def sink(batch, batch_id):
        batch.write.mode("append").saveAsTable(table)

    query = (spark_session.readStream.format("rate-micro-batch").option("rowsPerBatch", 2).load()
             .writeStream.foreachBatch(sink).trigger(processingTime="300 milliseconds").start())
    harness_wait = time.time() + 60
    while time.time() < harness_wait and (query.lastProgress is None or query.lastProgress["batchId"] < 1):
        time.sleep(0.2)
    if ending == "operator_kill":
        status, body = gw.admin(f"/v1/sessions/runner/{session_id}", method="DELETE")
        assert status == 200, body
    else:
        status, body = gw.admin("/v1/sessions?user=runner")
        [listed] = [s for s in json.loads(body)["sessions"] if s["session_id"] == session_id]
        assert listed["expires"] and listed["age_seconds"] >= 0
        deadline = time.time() + 20
        while time.time() < deadline and value_of(gw, "sparkgate_sessions_expired_total", reason="lifetime") < 1:
            time.sleep(0.5)
        assert value_of(gw, "sparkgate_sessions_expired_total", reason="lifetime") >= 1
    time.sleep(2)  # the last batch in flight finishes
    before = table_rows(connect, gw, material, "reader", table)
    time.sleep(3)
    after = table_rows(connect, gw, material, "reader", table)
    assert before == after and before > 0, f"the stream kept writing after its session ended ({before} -> {after} rows)"
    # The session's own next call says why it is over.
    with pytest.raises(Exception) as info:
        spark_session.range(1).count()
    if ending == "lifetime":
        assert "max_session_seconds (8 s)" in str(info.value), str(info.value)[:500]


def value_of(gw, name, **labels):
    from test_observability import samples, value
    return value(samples(gw), name, **labels) or 0


def test_a_session_outlives_its_token_for_the_same_user_and_refuses_another(gateway, material, connect):
    """A client reconnects with a fresh token (the first one expired or was rotated) under the same
    `;session_id=` and finds its state; another user's token for that id is refused as before."""
    session_id = str(uuid.uuid4())
    first = connect(gateway.url(material.token("rotating", ttl="1h"), session_id=session_id))
    first.range(7).createOrReplaceTempView("rotating_view")
    again = connect(gateway.url(material.token("rotating", ttl="2h"), session_id=session_id))
    assert again.table("rotating_view").count() == 7
    with pytest.raises(Exception, match="belongs to another user"):
        connect(gateway.url(material.token("someone-else"), session_id=session_id)).table("rotating_view").count()


def test_a_result_stream_the_client_replaced_by_reattaching_is_audited_as_superseded(gateway, material):
    """A client reattaches to its operation on a new stream while the first is still open: Spark ends the first
    with INVALID_CURSOR.DISCONNECTED. The client has every row (on the new stream); the audit line of the first
    says superseded_by_reattach and CANCELLED, never INTERNAL."""
    token = material.token("reattacher")
    session_id, operation_id = str(uuid.uuid4()), str(uuid.uuid4())
    req = pb().ExecutePlanRequest(session_id=session_id, operation_id=operation_id)
    req.user_context.user_id = "reattacher"
    req.request_options.add().reattach_options.reattachable = True
    req.plan.root.sql.query = "SELECT id, repeat('x', 100) AS pad FROM range(3000000)"
    with open(material.ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(f.read())
    metadata = [("authorization", f"Bearer {token}")]
    with grpc.secure_channel(f"localhost:{gateway.port}", creds) as channel:
        execute = channel.unary_stream("/spark.connect.SparkConnectService/ExecutePlan", request_serializer=None, response_deserializer=None)
        reattach = channel.unary_stream("/spark.connect.SparkConnectService/ReattachExecute", request_serializer=None, response_deserializer=None)
        first = execute(req.SerializeToString(), metadata=metadata, timeout=120)
        next(first)  # the stream is open and the operation runs
        again = pb().ReattachExecuteRequest(session_id=session_id, operation_id=operation_id)
        again.user_context.user_id = "reattacher"
        rows, complete = 0, False
        while not complete:
            for raw in reattach(again.SerializeToString(), metadata=metadata, timeout=120):
                response = pb().ExecutePlanResponse.FromString(raw)
                rows += response.arrow_batch.row_count
                complete = complete or response.HasField("result_complete")
                if response.response_id:
                    again.last_response_id = response.response_id
        with pytest.raises(grpc.RpcError) as info:
            for _ in first:
                pass
        assert "INVALID_CURSOR.DISCONNECTED" in info.value.details(), info.value.details()[:300]
    lines = [l for l in gateway.audit_lines() if l.get("user") == "reattacher" and l["method"] == "ExecutePlan"]
    assert lines, "no audit line for the first stream"
    assert lines[-1]["status"] == "CANCELLED" and lines[-1]["reason"] == "superseded_by_reattach", lines[-1]
    assert all(l["status"] != "INTERNAL" for l in gateway.audit_lines() if l.get("user") == "reattacher")


def test_the_token_under_authentication_works_as_the_older_jvm_clients_send_it(gateway, material, spark, backend_token):
    """Spark's JVM client 4.0.0 to 4.0.4 and 4.1.0 to 4.1.3 sends `authentication: Bearer <JWT>`: Sparkgate reads
    it as it reads authorization (Spark's own check refuses it)."""
    session = str(uuid.uuid4())
    req = harness.config_get_request(session, "spark.sql.shuffle.partitions")
    token = material.token("old-jvm")
    reply = harness.grpc_call(gateway, "Config", req, metadata=[("authentication", f"Bearer {token}")])
    assert pb().ConfigResponse.FromString(reply).pairs[0].value == "4"
    with pytest.raises(grpc.RpcError) as info:
        harness.grpc_call(gateway, "Config", req, token=token, metadata=[("authentication", f"Bearer {material.token('other')}")])
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and "different tokens" in info.value.details()
    # Spark itself refuses the same header (its check reads authorization only).
    with grpc.insecure_channel(spark.endpoint) as channel:
        call = channel.unary_unary("/spark.connect.SparkConnectService/Config", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as direct:
            call(req.SerializeToString(), metadata=[("authentication", f"Bearer {backend_token}")], timeout=20)
    assert direct.value.code() == grpc.StatusCode.UNAUTHENTICATED
