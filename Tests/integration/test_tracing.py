"""OpenTelemetry traces: spans posted to a real OTLP/HTTP receiver, continuing the client's traceparent."""
import os
import time
import uuid

import grpc
import pytest

import harness
from otlp_receiver import OTLPReceiver, attributes


@pytest.fixture
def receiver():
    r = OTLPReceiver()
    yield r
    r.close()


def wait_for_spans(receiver, predicate, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [s for _, s in receiver.spans if predicate(s)]
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no matching span in {len(receiver.spans)} received")


def test_a_call_is_traced_from_the_clients_traceparent_to_spark(spark, make_gateway, material, receiver):
    config = material.base_config(spark.endpoint, tracing={"otlp_endpoint": receiver.endpoint, "sample_ratio": 0.0, "service_name": "gate-under-test"})
    gw = make_gateway(config, name="tracing")
    trace_id = os.urandom(16).hex()
    parent_id = os.urandom(8).hex()
    session = str(uuid.uuid4())
    token = material.token("alice")
    # sample_ratio 0: only the client's sampled traceparent makes this call recorded.
    harness.grpc_call(gw, "Config", harness.config_get_request(session, "spark.sql.shuffle.partitions"), token=token,
                      metadata=[("traceparent", f"00-{trace_id}-{parent_id}-01")])
    [root] = wait_for_spans(receiver, lambda s: s.trace_id.hex() == trace_id and s.name == "spark.connect.SparkConnectService/Config")
    assert root.parent_span_id.hex() == parent_id
    assert root.kind == 2  # SERVER
    a = attributes(root)
    assert a["rpc.system"] == "grpc" and a["rpc.method"] == "Config" and a["rpc.grpc.status_code"] == 0
    assert a["enduser.id"] == "alice" and a["sparkgate.team"] == "analytics"
    assert a["spark.session_id"] == session and a["spark.backend_session_id"] != session  # namespaced
    assert a["sparkgate.backend"] == "local" and a["sparkgate.response_bytes"] > 0
    children = wait_for_spans(receiver, lambda s: s.trace_id.hex() == trace_id and s.parent_span_id == root.span_id)
    names = {s.name for s in children}
    assert {"sparkgate.authenticate", "sparkgate.admit", "sparkgate.backend.connect", "sparkgate.backend.first_response"} <= names, names
    for child in children:
        assert root.start_time_unix_nano <= child.start_time_unix_nano <= child.end_time_unix_nano <= root.end_time_unix_nano
    resource = next(r for r, s in receiver.spans if s.span_id == root.span_id)
    assert resource["service.name"] == "gate-under-test"

    # With sample_ratio 0, a call without a sampled traceparent records nothing; nor does a call whose token
    # fails, whatever its traceparent says (an unauthenticated flood cannot make the gateway export spans).
    before = len(receiver.spans)
    harness.grpc_call(gw, "Config", harness.config_get_request(session, "spark.sql.shuffle.partitions"), token=token)
    with pytest.raises(grpc.RpcError) as refused:
        harness.grpc_call(gw, "Config", harness.config_get_request(session, "x"), token="not.a.jwt",
                          metadata=[("traceparent", f"00-{os.urandom(16).hex()}-{parent_id}-01")])
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    time.sleep(3.5)  # spans are exported every 2 s
    assert receiver.spans[before:] == []


def test_the_backend_gets_the_calls_trace_context(make_gateway, material, receiver):
    """A backend that records request headers: Sparkgate's own traceparent replaces the client's."""
    import threading
    seen = []
    # A plaintext HTTP/2 backend is needed to see headers: the h2 package serves one on a socket.
    import socket
    import h2.config
    import h2.connection
    import h2.events
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]

    def serve():
        while True:
            try:
                conn_sock, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn_sock,), daemon=True).start()

    def handle(conn_sock):
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        conn_sock.sendall(conn.data_to_send())
        while True:
            data = conn_sock.recv(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    seen.append({k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v for k, v in event.headers})
                if isinstance(event, h2.events.StreamEnded):
                    conn.send_headers(event.stream_id, [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "0")], end_stream=True)
            conn_sock.sendall(conn.data_to_send())

    threading.Thread(target=serve, daemon=True).start()
    config = material.base_config(f"127.0.0.1:{port}", tracing={"otlp_endpoint": receiver.endpoint, "sample_ratio": 1.0})
    config["backends"]["local"]["health"] = {"interval_seconds": 3600, "timeout_seconds": 1}
    gw = make_gateway(config, name="tracing-backend")
    trace_id = os.urandom(16).hex()
    client_parent = os.urandom(8).hex()
    harness.grpc_call(gw, "Config", harness.config_get_request(str(uuid.uuid4()), "k"), token=material.token("alice"),
                      metadata=[("traceparent", f"00-{trace_id}-{client_parent}-01"), ("tracestate", "vendor=1")])
    calls = [h for h in seen if h.get(":path", "").endswith("/Config") and trace_id in h.get("traceparent", "")]
    assert calls, seen
    [root] = wait_for_spans(receiver, lambda s: s.trace_id.hex() == trace_id and s.kind == 2)
    # The backend's parent is Sparkgate's server span, not the client's span.
    assert calls[0]["traceparent"] == f"00-{trace_id}-{root.span_id.hex()}-01"

    # A malformed traceparent is ignored, never an error: the call succeeds in a trace of its own.
    for garbage in ("00-zz-yy-01", "ff-" + "0" * 32 + "-" + "0" * 16 + "-01", "00-" + "a" * 500):
        session = str(uuid.uuid4())
        harness.grpc_call(gw, "Config", harness.config_get_request(session, "k"), token=material.token("alice"), metadata=[("traceparent", garbage)])
        [own] = wait_for_spans(receiver, lambda s: s.kind == 2 and attributes(s).get("spark.session_id") == session)
        assert own.parent_span_id == b"" and attributes(own)["rpc.grpc.status_code"] == 0

    # A refused call is traced (ratio 1.0) in a trace of its own, not the one its traceparent named.
    claimed = os.urandom(16).hex()
    with pytest.raises(grpc.RpcError):
        harness.grpc_call(gw, "Config", harness.config_get_request(str(uuid.uuid4()), "k"), token="not.a.jwt",
                          metadata=[("traceparent", f"00-{claimed}-{client_parent}-01")])
    refused = wait_for_spans(receiver, lambda s: s.kind == 2 and attributes(s).get("rpc.grpc.status_code") == 16)
    assert refused[0].trace_id.hex() != claimed and refused[0].parent_span_id == b"" and refused[0].status.code == 2
    [auth] = wait_for_spans(receiver, lambda s: s.parent_span_id == refused[0].span_id)
    assert auth.name == "sparkgate.authenticate" and attributes(auth)["sparkgate.auth_failure"] == "malformed_token"
    listener.close()
