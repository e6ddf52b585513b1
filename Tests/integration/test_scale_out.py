"""Several replicas sharing quotas and session ownership through a real Redis, in front of real Spark 4.3."""
import threading
import time
import uuid

import grpc
import pytest

import harness
from test_observability import samples, value

HEARTBEAT = 1.0  # seconds; what a dead replica held expires 4 heartbeats later


@pytest.fixture(scope="module")
def redis(material):
    server = harness.RedisServer(material.dir)
    yield server
    server.close()


def shared_config(material, spark, redis, prefix, **state):
    config = material.base_config(spark.endpoint)
    config["teams"] = {
        "analytics": {},
        "two-sessions": {"quotas": {"max_sessions_per_user": 2}},
        "slow-rate": {"quotas": {"requests_per_second": 0.5, "request_burst": 3}},
        "one-op-team": {"quotas": {"max_concurrent_operations_per_team": 1}},
    }
    config["state"] = {"kind": "redis", "redis": {"addresses": [redis.address], "key_prefix": prefix, "heartbeat_seconds": HEARTBEAT,
                                                  "timeout_ms": 300}, **state}
    return config


@pytest.fixture
def replicas(spark, material, redis, make_gateway):
    """Three replicas (a, b, c) on one Redis, with a key prefix of their own per test."""
    config = shared_config(material, spark, redis, f"t{uuid.uuid4().hex[:8]}:")
    return tuple(make_gateway(config, name=f"replica-{n}") for n in "abc")


def config_call(gateway, token, session_id, timeout=20):
    return harness.grpc_call(gateway, "Config", harness.config_get_request(session_id, "spark.sql.ansi.enabled"), token=token, timeout=timeout)


def test_sessions_per_user_count_over_every_replica(replicas, material, connect):
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException
    a, b, c = replicas
    token = material.token("carol", team="two-sessions")
    first = connect(a.url(token))
    first.range(1).collect()
    connect(b.url(token)).range(1).collect()
    with pytest.raises(SparkConnectGrpcException) as info:
        connect(c.url(token)).range(1).collect()
    assert "team two-sessions allows 2 sessions per user; carol has 2 open" in str(info.value)
    first.stop()  # released through a: the slot is free on b too
    assert connect(b.url(token)).range(4).count() == 4


def test_one_rate_bucket_per_user_across_replicas(replicas, material):
    token = material.token("rita", team="slow-rate")
    session = str(uuid.uuid4())
    outcomes = []
    for i in range(6):
        try:
            config_call(replicas[i % 3], token, session)
            outcomes.append("ok")
        except grpc.RpcError as e:
            outcomes.append(e.code().name)
            assert "team slow-rate allows 0.5 requests per second per user (burst 3)" in e.details()
    # The burst of 3 is shared: spreading calls over the replicas does not multiply it.
    assert outcomes == ["ok"] * 3 + ["RESOURCE_EXHAUSTED"] * 3, outcomes


def test_a_session_id_is_refused_to_another_user_on_every_replica(replicas, material):
    session = str(uuid.uuid4())
    config_call(replicas[0], material.token("alice"), session)
    for replica in replicas:
        with pytest.raises(grpc.RpcError) as info:
            config_call(replica, material.token("bob"), session)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"session {session} belongs to another user" in info.value.details()


def test_an_operator_kills_a_session_on_the_replica_that_does_not_hold_it(replicas, material, connect):
    a, b, _ = replicas
    spark = connect(a.url(material.token("kim")))
    running = threading.Event()
    spark.registerProgressHandler(lambda stages, inflight_tasks, operation_id, done: running.set() if inflight_tasks else None)
    failure = {}

    def query():
        try:
            spark.range(0, 10**13, 1, 2).selectExpr("max(id % 7)").collect()
        except Exception as e:
            failure["error"] = e

    t = threading.Thread(target=query)
    t.start()
    assert running.wait(90)
    status, body = b.admin(f"/v1/sessions/kim/{spark.session_id}", method="DELETE")
    assert status == 200, body
    t.join(60)
    assert not t.is_alive(), "the query held by replica a did not end after the kill on replica b"
    # Replica a ends the stream (CANCELLED, "an operator ended this session") while replica b releases the
    # session on Spark; whichever the client hears last, the query is over.
    error = str(failure.get("error"))
    assert "an operator ended this session" in error or "INVALID_HANDLE.SESSION_CLOSED" in error, error


def test_what_a_dead_replica_held_expires_by_itself(replicas, material):
    a, b, _ = replicas
    from pyspark.sql import SparkSession
    spark = SparkSession.builder.remote(a.url(material.token("dora", team="one-op-team"))).create()
    running = threading.Event()
    spark.registerProgressHandler(lambda stages, inflight_tasks, operation_id, done: running.set() if inflight_tasks else None)
    # One partition: Spark keeps a core free for the query that checks the slot came back.
    threading.Thread(target=_swallow, args=(lambda: spark.range(0, 10**13, 1, 1).selectExpr("max(id % 7)").collect(),), daemon=True).start()
    assert running.wait(90)
    other = material.token("eli", team="one-op-team")
    session = str(uuid.uuid4())
    request = execute_request(session, "eli")
    with pytest.raises(grpc.RpcError) as info:
        list(stream_call(b, request, other))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "team one-op-team allows 1 concurrent operation; 1 is running" in info.value.details()

    a.signal(9)  # the replica dies without releasing anything
    died = time.time()
    # Namespacing is stateless: the same Spark session answers through another replica at once.
    config_call(b, material.token("dora", team="one-op-team"), spark.session_id)
    while True:
        try:
            list(stream_call(b, execute_request(session, "eli"), other))
            break
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
            assert time.time() - died < 4 * HEARTBEAT + 5, "the dead replica's operation was never released"
            time.sleep(0.25)
    healed = time.time() - died
    print(f"dead replica's operation expired after {healed:.1f} s (heartbeat {HEARTBEAT} s, holding {4 * HEARTBEAT} s)")
    assert healed <= 4 * HEARTBEAT + 2
    # The session outlives its replica in the shared state: an operator on b can still end it (and its query).
    status, body = b.admin(f"/v1/sessions/dora/{spark.session_id}", method="DELETE")
    assert status == 200, body
    spark.client.close()


def _swallow(fn):
    try:
        fn()
    except Exception:
        pass


def execute_request(session_id, user):
    from pyspark.sql.connect.proto import base_pb2 as pb
    req = pb.ExecutePlanRequest(session_id=session_id)
    req.user_context.user_id = user
    req.plan.root.sql.query = "SELECT 1 AS one"
    return req


def stream_call(gateway, request, token, timeout=60):
    with open(gateway.material.ca, "rb") as f:
        ca = f.read()
    channel = grpc.secure_channel(f"localhost:{gateway.port}", grpc.ssl_channel_credentials(ca))
    call = channel.unary_stream("/spark.connect.SparkConnectService/ExecutePlan", request_serializer=None, response_deserializer=None)
    try:
        yield from call(request.SerializeToString(), metadata=[("authorization", f"Bearer {token}")], timeout=timeout)
    finally:
        channel.close()


def test_redis_down_applies_each_failure_policy_and_recovers(spark, material, make_gateway):
    server = harness.RedisServer(material.dir)
    try:
        prefix = f"t{uuid.uuid4().hex[:8]}:"
        open_quotas = make_gateway(shared_config(material, spark, server, prefix), name="fail-open")
        closed_quotas = make_gateway(shared_config(material, spark, server, prefix, failure_policy={"quotas": "fail_closed"}), name="fail-closed")
        token = material.token("fay")
        known = str(uuid.uuid4())
        config_call(open_quotas, token, known)
        config_call(closed_quotas, token, known)
        server.close()

        # Ownership fails closed (the default): a session this replica does not know is refused...
        with pytest.raises(grpc.RpcError) as info:
            config_call(open_quotas, token, str(uuid.uuid4()))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shared state (redis) unreachable" in info.value.details()
        # ...while one it already holds for this user goes on under local quotas (quotas fail open).
        config_call(open_quotas, token, known)
        # With quotas failing closed, every call is refused.
        with pytest.raises(grpc.RpcError) as info:
            config_call(closed_quotas, token, known)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert value(samples(open_quotas), "sparkgate_state_errors_total", kind="redis", operation="admit") >= 1

        server.start()
        deadline = time.time() + 15
        while True:
            try:
                config_call(open_quotas, token, str(uuid.uuid4()))
                break
            except grpc.RpcError as e:
                assert time.time() < deadline, f"still refused after Redis came back: {e.details()}"
                time.sleep(0.5)
    finally:
        server.close()
