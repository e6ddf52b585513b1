#!/usr/bin/env python3
"""Record real Spark Connect request/response bytes as unit-test fixtures.

Runs a byte-transparent gRPC proxy (grpcio with identity serializers) in front of a Spark Connect server,
drives it with the real PySpark client, and writes the first message of each method (and small result
streams) to Tests/SparkgateCoreTests/Fixtures. Usage:

    python scripts/dev/capture-fixtures.py --backend localhost:15002 --token <spark token> --out Tests/SparkgateCoreTests/Fixtures
"""
import argparse, os, sys, threading, tempfile
from concurrent import futures
import grpc

STREAM_OUT = {"ExecutePlan", "ReattachExecute"}
STREAM_IN = {"AddArtifacts"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", required=True)
    ap.add_argument("--token", default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    channel = grpc.insecure_channel(args.backend, options=[("grpc.max_receive_message_length", 1 << 27), ("grpc.max_send_message_length", 1 << 27)])
    metadata = [("authorization", "Bearer " + args.token)] if args.token else []
    lock = threading.Lock()
    seen = {}

    def save(name, data):
        with lock:
            n = seen.get(name, 0)
            seen[name] = n + 1
            if n < 6 and len(data) <= 8192:
                with open(os.path.join(args.out, f"{name}-{n}.bin"), "wb") as f:
                    f.write(data)

    class Proxy(grpc.GenericRpcHandler):
        def service(self, details):
            method = details.method.rsplit("/", 1)[-1]
            path = details.method
            if method in STREAM_OUT:
                call = channel.unary_stream(path)
                def h(req, ctx):
                    save(f"{method}Request", req)
                    for resp in call(req, metadata=metadata):
                        save(f"{method}Response", resp)
                        yield resp
                return grpc.unary_stream_rpc_method_handler(h)
            if method in STREAM_IN:
                call = channel.stream_unary(path)
                def h(reqs, ctx):
                    def it():
                        for r in reqs:
                            save(f"{method}Request", r)
                            yield r
                    resp = call(it(), metadata=metadata)
                    save(f"{method}Response", resp)
                    return resp
                return grpc.stream_unary_rpc_method_handler(h)
            call = channel.unary_unary(path)
            def h(req, ctx):
                save(f"{method}Request", req)
                resp = call(req, metadata=metadata)
                save(f"{method}Response", resp)
                return resp
            return grpc.unary_unary_rpc_method_handler(h)

    server = grpc.server(futures.ThreadPoolExecutor(8), handlers=[Proxy()], options=[("grpc.max_receive_message_length", 1 << 27), ("grpc.max_send_message_length", 1 << 27)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    from pyspark.sql import SparkSession
    spark = SparkSession.builder.remote(f"sc://127.0.0.1:{port}/;user_id=fixture-user").getOrCreate()
    spark.range(10).selectExpr("id", "id * 2 as b").collect()
    spark.sql("select 'x' as s").toArrow()
    spark.conf.set("spark.sql.shuffle.partitions", "7")
    spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.getAll
    spark.range(3).schema
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "fixture_mod.py")
        with open(p, "w") as f:
            f.write("def f(x):\n    return x + 1\n")
        spark.addArtifacts(p, pyfile=True)
    spark.interruptAll()
    spark.stop()
    server.stop(0)
    print("captured:", ", ".join(f"{k} x{v}" for k, v in sorted(seen.items())))
    describe(args.out)


def describe(out):
    """Decode every fixture with the official protobuf classes into expected.json, the tests' oracle."""
    import json
    from pyspark.sql.connect.proto import base_pb2 as pb
    types = {
        "ExecutePlanRequest": pb.ExecutePlanRequest, "ExecutePlanResponse": pb.ExecutePlanResponse,
        "AnalyzePlanRequest": pb.AnalyzePlanRequest, "AnalyzePlanResponse": pb.AnalyzePlanResponse,
        "ConfigRequest": pb.ConfigRequest, "ConfigResponse": pb.ConfigResponse,
        "AddArtifactsRequest": pb.AddArtifactsRequest, "AddArtifactsResponse": pb.AddArtifactsResponse,
        "InterruptRequest": pb.InterruptRequest, "InterruptResponse": pb.InterruptResponse,
        "ReleaseExecuteRequest": pb.ReleaseExecuteRequest, "ReleaseExecuteResponse": pb.ReleaseExecuteResponse,
        "ReleaseSessionRequest": pb.ReleaseSessionRequest, "ReleaseSessionResponse": pb.ReleaseSessionResponse,
    }
    result = {}
    for name in sorted(os.listdir(out)):
        if not name.endswith(".bin"):
            continue
        kind = name.rsplit("-", 1)[0]
        msg = types[kind]()
        msg.ParseFromString(open(os.path.join(out, name), "rb").read())
        d = {"session_id": msg.session_id}
        if kind.endswith("Request"):
            d["user_id"] = msg.user_context.user_id
            d["extensions"] = len(msg.user_context.extensions)
            if msg.HasField("client_type"):
                d["client_type"] = msg.client_type
        if (kind == "ExecutePlanRequest" and msg.HasField("operation_id")) or kind == "ReleaseExecuteRequest":
            d["operation_id"] = msg.operation_id
        if kind == "ExecutePlanRequest":
            d["reattachable"] = any(o.HasField("reattach_options") and o.reattach_options.reattachable for o in msg.request_options)
        if kind == "ReleaseExecuteRequest":
            d["release_all"] = msg.HasField("release_all")
        if kind == "ExecutePlanResponse":
            d["arrow_bytes"] = len(msg.arrow_batch.data) if msg.HasField("arrow_batch") else 0
            d["arrow_rows"] = msg.arrow_batch.row_count if msg.HasField("arrow_batch") else 0
            d["result_complete"] = msg.HasField("result_complete")
        if kind == "ConfigRequest":
            op = msg.operation.WhichOneof("op_type")
            d["config_op"] = op
            inner = getattr(msg.operation, op)
            d["config_keys"] = [p.key for p in inner.pairs] if hasattr(inner, "pairs") else list(getattr(inner, "keys", []))
        if kind == "ConfigResponse":
            d["pairs"] = [[p.key, p.value if p.HasField("value") else None] for p in msg.pairs]
        if kind == "AddArtifactsRequest":
            p = msg.WhichOneof("payload")
            d["artifact_bytes"] = sum(len(a.data.data) for a in msg.batch.artifacts) if p == "batch" else (len(msg.begin_chunk.initial_chunk.data) if p == "begin_chunk" else len(msg.chunk.data))
        if kind == "InterruptResponse":
            d["interrupted_ids"] = list(msg.interrupted_ids)
        result[name] = d
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--describe-only"]:
        describe(sys.argv[2])
    else:
        main()
