"""Backend health checks and failover, with a backend of two endpoints in front of real Spark 4.3 (one through a
TCP proxy the test stops and starts, as a Spark server that dies and comes back)."""
import json
import threading
import time
import uuid

import grpc
import pytest

import harness
from test_observability import samples, value
from test_scale_out import config_call, stream_call


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, what
        time.sleep(0.1)


def endpoint_of(gateway, user, session_id):
    status, body = gateway.admin(f"/v1/sessions?user={user}")
    assert status == 200
    return next(s["endpoint"] for s in json.loads(body)["sessions"] if s["session_id"] == session_id)


def test_a_failed_endpoint_takes_no_new_sessions_and_its_sessions_are_not_moved(spark, material, make_gateway):
    proxy = harness.TCPProxy(spark.endpoint)
    gw = pinned = None
    try:
        config = material.base_config(spark.endpoint)
        config["backends"]["local"]["endpoints"] = [proxy.address, spark.endpoint]
        config["teams"]["analytics"] = {"quotas": {"max_sessions_per_user": 100}}
        config["backends"]["local"]["health"] = {"interval_seconds": 1, "timeout_seconds": 1, "unhealthy_after": 2, "healthy_after": 1}
        gw = make_gateway(config, name="health")
        token = material.token("hal")
        # Sessions spread over both endpoints by rendezvous hashing; find one that lives behind the proxy.
        pinned = None
        for _ in range(40):
            session = str(uuid.uuid4())
            config_call(gw, token, session)
            if endpoint_of(gw, "hal", session) == proxy.address:
                pinned = session
                break
        assert pinned, "no session landed on the proxied endpoint in 40 tries"
        health = lambda endpoint: value(samples(gw), "sparkgate_backend_health", backend="local", endpoint=endpoint)
        wait_for(lambda: health(proxy.address) == 1 and health(spark.endpoint) == 1, 10, "both endpoints healthy at first")

        # A query runs on the endpoint when it dies: the client hears UNAVAILABLE at once, not at its deadline.
        from pyspark.sql.connect.proto import base_pb2 as pb
        request = pb.ExecutePlanRequest(session_id=pinned)
        request.user_context.user_id = "hal"
        request.plan.root.sql.query = "SELECT max(id % 7) FROM range(0, 10000000000000, 1, 1)"
        ended = {}

        def run():
            try:
                list(stream_call(gw, request, token))
            except grpc.RpcError as e:
                ended.update(code=e.code(), details=e.details(), at=time.time())

        runner = threading.Thread(target=run)
        runner.start()
        time.sleep(3)  # the query is running on Spark behind the proxy
        assert runner.is_alive()
        proxy.close()
        died = time.time()
        runner.join(15)
        assert ended.get("code") == grpc.StatusCode.UNAVAILABLE, ended
        assert ended["at"] - died < 5
        wait_for(lambda: health(proxy.address) == 0, 10, "the stopped endpoint was never marked unhealthy")
        with pytest.raises(grpc.RpcError) as info:
            config_call(gw, token, pinned)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert f"backend 'local' endpoint {proxy.address}, where this session lives, is failing its health checks" in info.value.details()
        for _ in range(10):  # new sessions all go to the healthy endpoint
            session = str(uuid.uuid4())
            config_call(gw, token, session)
            assert endpoint_of(gw, "hal", session) == spark.endpoint
        assert gw.admin("/readyz")[0] == 200  # one healthy endpoint is enough

        proxy.start()
        wait_for(lambda: health(proxy.address) == 1, 10, "the endpoint that came back was never marked healthy")
        config_call(gw, token, pinned)  # the session is back where it lives
    finally:
        # Spark may still run the query whose stream died, on a core the rest of the suite shares: releasing the
        # session where it lives stops it, whatever the test got to.
        if gw and pinned:
            proxy.start()
            wait_for(lambda: health(proxy.address) == 1, 10, "the endpoint that came back was never marked healthy")
            status, body = gw.admin(f"/v1/sessions/hal/{pinned}", method="DELETE")
            assert status == 200, body
        proxy.close()
