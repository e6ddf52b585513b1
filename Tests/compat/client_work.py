"""The compatibility work, run by one client's own Python (any PySpark 3.5 to 4.3, or pyspark-client) against
one Spark Connect URL, direct or through Sparkgate. Prints one JSON object: each check's value or error.

    python client_work.py '{"url": "sc://...", "other_url": "sc://...", "checks": ["sql", ...]}'

Values are plain JSON (numbers, strings, lists) so the driver compares the direct run with the run through
Sparkgate as they are. Nothing here knows which path it is on.
"""
import json
import subprocess
import sys
import time
import traceback

ARGS = json.loads(sys.argv[1])
RESULTS = {}


def check(name, fn):
    if name not in ARGS["checks"]:
        return
    started = time.time()
    try:
        RESULTS[name] = {"ok": True, "value": fn()}
    except Exception as e:  # every failure is a result to report, never a crash of the run
        RESULTS[name] = {"ok": False, "error": f"{type(e).__name__}: {' '.join(str(e).split())[:400]}"}
        if ARGS.get("verbose"):
            traceback.print_exc()
    RESULTS[name]["seconds"] = round(time.time() - started, 2)


def session(url):
    from pyspark.sql import SparkSession
    builder = SparkSession.builder.remote(url)
    # create() is 4.0+; 3.5 has getOrCreate() only (one session per process is all this needs).
    return builder.create() if hasattr(builder, "create") else builder.getOrCreate()


def main():
    import pyspark
    RESULTS["client"] = {"ok": True, "value": pyspark.__version__}
    spark = session(ARGS["url"])
    if ARGS.get("join"):
        ARGS["checks"] = ["join"]
        check("join", lambda: [list(r) for r in spark.sql("SELECT 1 AS one").collect()])
        print(json.dumps(RESULTS))
        return
    RESULTS["session_id"] = {"ok": True, "value": str(spark.client._session_id)}

    check("sql", lambda: [list(r) for r in spark.sql("SELECT sum(id) AS s, count(*) AS n, max(id % 97) AS m FROM range(1000000)").collect()])

    def large_result():
        # Longer than the server's one-second stream cut (senderMaxStreamDuration): the client reattaches.
        frame = spark.range(0, 4_000_000, 1, 8).selectExpr("id", "id * 3 AS b").toPandas()
        return [len(frame), int(frame["b"].sum()), int(frame["id"].max())]

    check("large_result", large_result)

    def upload():
        import pandas as pd
        rows = 300_000
        frame = pd.DataFrame({"a": list(range(rows)), "b": [i * 0.5 for i in range(rows)]})
        return [list(r) for r in spark.createDataFrame(frame).selectExpr("sum(a)", "sum(b)", "count(*)").collect()]

    check("upload", upload)

    def udf():
        from pyspark.sql.functions import udf as make_udf
        double = make_udf(lambda x: x * 2, "long")
        return [list(r) for r in spark.range(100).select(double("id").alias("d")).selectExpr("sum(d)").collect()]

    check("udf", udf)

    def temp_view():
        spark.range(7).createOrReplaceTempView("compat_view")
        return [list(r) for r in spark.sql("SELECT count(*), sum(id) FROM compat_view").collect()]

    check("temp_view", temp_view)

    def other_user_on_this_session():
        # Another user names this session's id: Spark alone lets them in; Sparkgate refuses, with a message
        # that says why. A process of its own: PySpark 3.5 keeps one session per process.
        join = {**ARGS, "url": ARGS["other_url"] + f";session_id={spark.client._session_id}", "join": True}
        out = subprocess.run([sys.executable, __file__, json.dumps(join)], capture_output=True, text=True, timeout=120)
        joined = json.loads(out.stdout.strip().splitlines()[-1])["join"]
        if not joined["ok"]:
            raise RuntimeError(joined["error"])
        return joined["value"]

    check("other_user", other_user_on_this_session)

    def stopped():
        stop(spark)
        return True

    check("stop", stopped)
    print(json.dumps(RESULTS))


def stop(spark):
    # stop() is where 4.0+ clients send ReleaseSession; 3.5 has no such call and only closes its channel.
    spark.stop()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        RESULTS["session"] = {"ok": False, "error": f"{type(e).__name__}: {' '.join(str(e).split())[:400]}"}
        print(json.dumps(RESULTS))
