"""A legitimate client for the abuse tests, in a process of its own: Config calls through the gateway on one
connection, timed, until told to stop; writes the latencies (ms) and any errors as JSON.

    python legit_probe.py PORT CA TOKEN OUT.json      (stops when OUT.json.stop exists)
"""
import json
import os
import sys
import time
import uuid

import grpc

from pyspark.sql.connect.proto import base_pb2 as pb


def main():
    port, ca, token, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    request = pb.ConfigRequest(session_id=str(uuid.uuid4()))
    request.user_context.user_id = "legit"
    request.operation.get.keys.append("spark.sql.shuffle.partitions")
    body = request.SerializeToString()
    with open(ca, "rb") as f:
        channel = grpc.secure_channel(f"localhost:{port}", grpc.ssl_channel_credentials(f.read()))
    call = channel.unary_unary("/spark.connect.SparkConnectService/Config", request_serializer=None, response_deserializer=None)
    metadata = [("authorization", f"Bearer {token}")]
    # Connect, and warm up the path (Spark's JIT included: this may be the first traffic of the session).
    # Warm until steady, not for a count: a just-started Spark (the first tests of a run) needs seconds of calls
    # before its JIT and GC settle. Steady = the last 50 calls all under 20 ms; at most 30 s.
    recent = []
    give_up = time.time() + 30
    while time.time() < give_up and (len(recent) < 50 or max(recent[-50:]) > 20):
        t0 = time.perf_counter()
        call(body, metadata=metadata, timeout=30)
        recent.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.005)
    open(out + ".ready", "w").close()
    latencies, errors = [], []
    while not os.path.exists(out + ".stop"):
        t0 = time.perf_counter()
        try:
            call(body, metadata=metadata, timeout=10)
            latencies.append((time.perf_counter() - t0) * 1000)
        except grpc.RpcError as e:
            errors.append(str(e.code()))
        time.sleep(0.01)
    channel.close()
    with open(out, "w") as f:
        json.dump({"latencies_ms": latencies, "errors": errors}, f)


if __name__ == "__main__":
    main()
