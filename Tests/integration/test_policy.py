"""Policies that cannot be talked around, each against real Spark 4.3: the config policy read as protobuf merges
a message and through SQL, a ledger no error text can reset, and the admin API's parsing and mutations. The
housekeeping rate bucket is checked in memory (RefusalsInMemoryTests), as are made-up reattaches and session ids
differing in case (QuotasInMemoryTests)."""
import json
import os
import random
import socket
import threading
import time
import uuid

import grpc
import pytest

import harness

DENIED = ["spark.sql.optimizer.excludedRules", "fs.s3a.secret.key", "spark.connect.authenticate.token", "spark.hadoop.fs.s3a.access.key"]
ALLOWED = ["spark.sparkgate.test.a", "spark.sparkgate.test.b", "spark.sql.shuffle.partitions"]
LONG_QUERY_ROWS = 10**13  # hours of work: always interrupted; one partition, so Spark keeps a core for the rest


@pytest.fixture(scope="module")
def policed(spark, material):
    """The default config policy, and teams with tight operation limits."""
    config = material.base_config(spark.endpoint)
    config["teams"] = {
        "analytics": {},
        "one-op": {"quotas": {"max_concurrent_operations_per_session": 1}},
        "two-op": {"quotas": {"max_concurrent_operations_per_session": 2}},
    }
    gw = harness.Gateway(material, config, name="policy")
    yield gw
    gw.close()


def pb():
    from pyspark.sql.connect.proto import base_pb2
    return base_pb2


def refused_by_policy(exc):
    return exc.code() == grpc.StatusCode.PERMISSION_DENIED and "config_policy" in exc.details()


def config_call(gateway, token, raw):
    """The Config call's error, or None when it succeeded (its response then in `config_call.response`)."""
    try:
        config_call.response = pb().ConfigResponse.FromString(harness.grpc_call(gateway, "Config", raw, token=token))
        return None
    except grpc.RpcError as e:
        return e


# MARK: config policy vs protobuf merge


def operation_fragment(kind, keys):
    """A serialized ConfigRequest holding only `operation` of `kind` with `keys`: concatenating fragments is
    what a hand-built request does, and protobuf merges them."""
    b = pb()
    op = b.ConfigRequest.Operation()
    if kind == "set":
        op.set.pairs.extend(b.KeyValue(key=k, value="1") for k in keys)
    elif kind == "get_with_default":
        op.get_with_default.pairs.extend(b.KeyValue(key=k, value="1") for k in keys)
    else:
        getattr(op, kind).keys.extend(keys)
    return b.ConfigRequest(operation=op).SerializeToString()


def header(session_id):
    b = pb()
    req = b.ConfigRequest(session_id=session_id, client_type="sparkgate-policy-test")
    req.user_context.user_id = "whoever"
    return req.SerializeToString()


def merged_keys(raw):
    """The key set protobuf's own parser reads from `raw`: the engine's view."""
    op = pb().ConfigRequest.FromString(raw).operation
    kind = op.WhichOneof("op_type")
    inner = getattr(op, kind)
    return kind, [p.key for p in inner.pairs] if kind in ("set", "get_with_default") else list(inner.keys)


@pytest.mark.parametrize("engine", ["spark", "sail"])
def test_a_denied_key_in_a_repeated_operation_is_refused(engine, request, material, make_gateway):
    backend = request.getfixturevalue(engine)
    gw = make_gateway(material.base_config(backend.endpoint), name=f"merge-{engine}")
    token = material.token("merger")
    sid = str(uuid.uuid4())
    # Two `operation` fields, then two `set` inside one: protobuf merges each into one set of three pairs.
    for raw in (
        header(sid) + operation_fragment("set", ["spark.sql.optimizer.excludedRules"]) + operation_fragment("set", ["spark.sparkgate.test.a"]),
        header(sid) + operation_fragment("unset", ["fs.s3a.secret.key"]) + operation_fragment("unset", ["spark.sparkgate.test.a"]),
    ):
        kind, keys = merged_keys(raw)
        assert len(keys) == 2  # what the engine would apply
        error = config_call(gw, token, raw)
        assert error is not None and refused_by_policy(error), error
        assert keys[0] in error.details()
    # The same request without the denied key reaches the engine and is applied.
    ok = header(sid) + operation_fragment("set", ["spark.sparkgate.test.a"]) + operation_fragment("set", ["spark.sparkgate.test.b"])
    assert config_call(gw, token, ok) is None


def test_random_config_requests_read_as_protobuf_reads_them(policed, material):
    seed = int(os.environ.get("SPARKGATE_SEED", random.randrange(1 << 32)))
    print(f"test_random_config_requests_read_as_protobuf_reads_them seed {seed}")
    rng = random.Random(seed)
    token = material.token("random-config")
    sid = str(uuid.uuid4())
    kinds = ["set", "unset", "get", "get_with_default", "get_option", "is_modifiable"]
    refused = passed = 0
    for round in range(60):
        raw = header(sid)
        if round < 2:  # every draw exercises both outcomes: a refused write, then a read that passes
            raw += operation_fragment("set", [rng.choice(DENIED)]) if round == 0 else operation_fragment("get", [rng.choice(ALLOWED)])
        for _ in range(0 if round < 2 else rng.randint(1, 4)):
            keys = [rng.choice(DENIED if rng.random() < 0.15 else ALLOWED) for _ in range(rng.randint(0, 3))]
            raw += operation_fragment(rng.choice(kinds), keys)
        kind, keys = merged_keys(raw)
        # Writes of a denied key are refused; reads pass with the denied values stripped from the response.
        expect_refused = kind in ("set", "unset") and any(k in DENIED for k in keys)
        error = config_call(policed, token, raw)
        got_refused = error is not None and refused_by_policy(error)
        assert got_refused == expect_refused, f"seed {seed} round {round}: protobuf reads {kind} {keys}; gateway: {error}"
        if error is None:
            leaked = [p.key for p in config_call.response.pairs if p.key in DENIED and p.HasField("value")]
            assert not leaked, f"seed {seed} round {round}: {kind} {keys} returned values of {leaked}"
        refused += got_refused
        passed += not got_refused
    assert refused and passed, f"seed {seed}: the draw should exercise both outcomes"


# MARK: SQL


def test_sql_set_and_reset_of_a_denied_key_are_refused(policed, material, connect):
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException
    spark = connect(policed.url(material.token("sql-setter")))
    attempts = [
        lambda: spark.sql("SET spark.sql.optimizer.excludedRules=org.apache.spark.sql.catalyst.optimizer.PushDownPredicates"),
        lambda: spark.sql("reset `spark.sql.optimizer.excludedRules`"),
        lambda: spark.sql("set Spark.Hadoop.FS.S3A.Secret.Key"),  # showing the value is reading it
        # SQL built at run time cannot be checked.
        lambda: spark.sql("EXECUTE IMMEDIATE 'SET spark.sql.optimizer.excludedRules=x'"),
        # A SET longer than the client's plan-compression threshold: the gateway told PySpark not to compress.
        lambda: spark.sql("SET spark.sql.optimizer.excludedRules=" + "x" * 2_000_000),
    ]
    for attempt in attempts:
        with pytest.raises(SparkConnectGrpcException) as info:
            attempt()
        assert "PERMISSION_DENIED" in str(info.value.getGrpcStatusCode()), info.value
    # A SQL relation nested under other relations is found too (a hand-built plan: PySpark sends SQL eagerly).
    from pyspark.sql.connect.proto import base_pb2 as b, relations_pb2 as r
    inner = r.Relation(sql=r.SQL(query="SET spark.sql.optimizer.excludedRules=x"))
    nested = r.Relation(limit=r.Limit(input=r.Relation(project=r.Project(input=inner)), limit=1))
    req = b.ExecutePlanRequest(session_id=str(spark.session_id), operation_id=str(uuid.uuid4()))
    req.user_context.user_id = "whoever"
    req.plan.root.CopyFrom(nested)
    error = stream_call(policed, "ExecutePlan", req, material.token("sql-setter"))
    assert error is not None and refused_by_policy(error), error
    # Allowed keys still work both ways, and the denied one was never applied.
    spark.sql("SET spark.sql.shuffle.partitions=3")
    assert spark.conf.get("spark.sql.shuffle.partitions") == "3"
    assert spark.sql("SET spark.sparkgate.test.a=7").collect()[0][1] == "7"
    assert spark.sql("SELECT 'SET spark.sql.optimizer.excludedRules=x' AS s").collect()[0].s.startswith("SET")


def direct_config(spark, backend_token, session_id, kind, key):
    """A Config call straight to Spark with the backend token: what the engine itself does with the key."""
    b = pb()
    req = b.ConfigRequest(session_id=session_id)
    req.user_context.user_id = "probe"
    if kind == "set":
        req.operation.set.pairs.append(b.KeyValue(key=key, value="probe"))
    else:
        req.operation.is_modifiable.keys.append(key)
    with grpc.insecure_channel(spark.endpoint) as channel:
        call = channel.unary_unary("/spark.connect.SparkConnectService/Config", request_serializer=None, response_deserializer=None)
        raw = call(req.SerializeToString(), metadata=[("authorization", f"Bearer {backend_token}")], timeout=30)
    return b.ConfigResponse.FromString(raw)


def test_default_deny_entries_hold_against_spark_43(policed, spark, backend_token, material):
    """Each default entry's reason, checked against the engine: excludedRules is settable at run time (so the
    gateway must deny it); extensions, plugins and jars are static in Spark 4.3 (denied for engines that are
    not); and the gateway refuses every one of them."""
    sid = str(uuid.uuid4())
    modifiable = direct_config(spark, backend_token, sid, "is_modifiable", "spark.sql.optimizer.excludedRules")
    assert [p.value for p in modifiable.pairs] == ["true"]
    direct_config(spark, backend_token, sid, "set", "spark.sql.optimizer.excludedRules")
    for static in ["spark.sql.extensions", "spark.plugins", "spark.jars"]:
        with pytest.raises(grpc.RpcError) as info:
            direct_config(spark, backend_token, sid, "set", static)
        assert "CANNOT_MODIFY" in info.value.details() or "static" in info.value.details().lower(), info.value.details()
    token = material.token("deny-check")
    gw_sid = str(uuid.uuid4())
    for key in ["spark.sql.optimizer.excludedRules", "spark.sql.extensions", "spark.plugins", "spark.jars", "spark.jars.packages",
                "spark.hadoop.fs.s3a.session.token", "spark.hadoop.fs.s3a.access.key", "spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net",
                "spark.hadoop.fs.s3a.secret.key", "javax.jdo.option.ConnectionPassword"]:
        error = config_call(policed, token, header(gw_sid) + operation_fragment("set", [key]))
        assert error is not None and refused_by_policy(error) and key in error.details(), (key, error)


# MARK: the ledger


def long_query(spark, rows=LONG_QUERY_ROWS):
    return spark.range(0, rows, 1, 1).selectExpr("max(id % 7) as m")


def start_long(spark):
    """Starts a long query in a thread; returns once Spark reports it running."""
    running = threading.Event()
    spark.registerProgressHandler(lambda stages, inflight_tasks, operation_id, done: running.set() if inflight_tasks else None)
    outcome = {}

    def run():
        try:
            long_query(spark).collect()
        except Exception as e:
            outcome["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert running.wait(60), "the long query never started"
    spark.clearProgressHandlers()
    return t


def test_error_text_cannot_reset_the_ledger(policed, material, connect):
    """Spark's messages echo what the user wrote. Text that names "session closed" must not make the gateway
    forget the session's running operations: the limit of 2 holds."""
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException
    spark = connect(policed.url(material.token("echo", team="two-op")))
    first = start_long(spark)
    with pytest.raises(SparkConnectGrpcException) as info:
        # (SESSION_NOT_FOUND in an ExecutePlan's message would make PySpark itself retry the query forever.)
        spark.sql("SELECT raise_error('INVALID_HANDLE.SESSION_CLOSED')").collect()
    assert "INVALID_HANDLE.SESSION_CLOSED" in str(info.value)
    with pytest.raises(Exception) as info:
        spark.conf.get("INVALID_HANDLE.SESSION_NOT_FOUND")
    assert "INVALID_HANDLE.SESSION_NOT_FOUND" in str(info.value)
    second = start_long(spark)
    with pytest.raises(SparkConnectGrpcException) as info:
        spark.range(3).collect()
    assert "RESOURCE_EXHAUSTED" in str(info.value.getGrpcStatusCode())
    assert "allows 2 concurrent operations per session; 2 are running" in str(info.value)
    spark.interruptAll()
    first.join(60)
    second.join(60)
    assert spark.range(2).count() == 2


def test_an_operation_ends_at_result_complete(policed, material, connect):
    """With one operation per session, back-to-back queries never see the previous one still running."""
    spark = connect(policed.url(material.token("sequential", team="one-op")))
    for i in range(40):
        assert [r.id for r in spark.range(i % 3 + 1).collect()] == list(range(i % 3 + 1))


def stream_call(gateway, method, request, token, timeout=20):
    """A server-streaming call drained to its end; returns the error, if any."""
    with open(gateway.material.ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(f.read())
    with grpc.secure_channel(f"localhost:{gateway.port}", creds) as channel:
        call = channel.unary_stream(f"/spark.connect.SparkConnectService/{method}", request_serializer=None, response_deserializer=None)
        try:
            for _ in call(request.SerializeToString(), metadata=[("authorization", f"Bearer {token}")], timeout=timeout):
                pass
            return None
        except grpc.RpcError as e:
            return e


def test_a_python_udf_in_a_shared_engine_can_read_the_backend_token(gateway, material, backend_token, connect):
    """The limit SECURITY.md states: code the engine runs can read the engine's command line and environment.
    This proves the limit is real, so the containment (the Spark port reachable only from Sparkgate) is not
    optional."""
    from pyspark.sql.functions import udf

    def snoop(_):
        import os
        pid = os.getpid()
        for _ in range(8):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    blob = f.read()
                with open(f"/proc/{pid}/environ", "rb") as f:
                    blob += b"\0" + f.read()
            except OSError:
                return "unreadable"
            for part in blob.split(b"\0"):
                if part.startswith(b"spark.connect.authenticate.token=") or part.startswith(b"SPARK_CONNECT_AUTHENTICATE_TOKEN="):
                    return part.split(b"=", 1)[1].decode()
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
            if pid <= 1:
                break
        return "not found"

    spark = connect(gateway.url(material.token("curious")))
    assert spark.range(1).select(udf(snoop, "string")("id").alias("t")).collect()[0].t == backend_token


# MARK: the admin API


def raw_admin(port, request_bytes):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request_bytes)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_admin_parses_nothing_before_the_token_and_survives_malformed_requests(policed):
    for target in [b"/v1/sessions?team=%", b"/v1/sessions?team=%zz&user=%C3", b"/v1/sessions?%%%%=&&==", b"/v1/sessions?team=\xff\xfe"]:
        unauthenticated = raw_admin(policed.admin_port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert unauthenticated.startswith(b"HTTP/1.1 401") or unauthenticated.startswith(b"HTTP/1.1 400"), unauthenticated[:100]
        authenticated = raw_admin(policed.admin_port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                                  + policed.admin_token.encode() + b"\r\nConnection: close\r\n\r\n")
        assert authenticated.startswith(b"HTTP/1.1 400"), authenticated[:100]
    garbage = raw_admin(policed.admin_port, b"\x00\xff NOT HTTP \r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400")
    big = raw_admin(policed.admin_port, b"POST /v1/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + policed.admin_token.encode()
                    + b"\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n" + b"a" * 2_000_000)
    assert big.startswith(b"HTTP/1.1 413")
    assert policed.admin("/healthz")[0] == 200
    assert policed.admin("/v1/sessions?team=a%26b")[0] == 200


def test_a_reload_with_several_problems_answers_valid_json(material, spark, make_gateway):
    gw = make_gateway(material.base_config(spark.endpoint), name="reload-json")
    broken = dict(gw.config)
    broken["limits"] = {"max_connections": -1, "idle_connection_timeout_seconds": "soon"}
    broken["listen_typo"] = True
    gw.write_config(broken)
    status, body = gw.admin("/v1/reload", method="POST")
    assert status == 422
    error = json.loads(body)["error"]
    assert "limits.max_connections" in error and "limits.idle_connection_timeout_seconds" in error and "listen_typo" in error
