"""One PySpark workload against one URL; prints a JSON result. Run by bench.py in its own process."""
import json
import sys
import time


def main():
    workload, url, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from pyspark.sql import SparkSession
    spark = SparkSession.builder.remote(url).create()
    try:
        if workload == "arrow":
            result = arrow(spark, size)
        elif workload == "conf":
            result = conf(spark, size)
        elif workload == "upload":
            result = upload(spark, size)
        else:
            raise SystemExit(f"unknown workload {workload}")
    finally:
        try:
            spark.stop()
        except Exception:
            pass
    print(json.dumps(result))


def arrow(spark, rows):
    import pyarrow.compute as pc
    spark.range(10).collect()  # session warm-up outside the timing
    t = time.perf_counter()
    table = spark.range(rows).selectExpr("id", "id * 3 as b", "cast(id as double) / 7 as c").toArrow()
    seconds = time.perf_counter() - t
    ok = table.num_rows == rows and pc.sum(table["id"]).as_py() == rows * (rows - 1) // 2 and pc.sum(table["b"]).as_py() == 3 * rows * (rows - 1) // 2
    return {"seconds": seconds, "bytes": table.nbytes, "mb_per_s": table.nbytes / seconds / 1e6, "checksum_ok": ok}


def conf(spark, calls):
    for _ in range(20):
        spark.conf.get("spark.sql.shuffle.partitions")
    # The runner reads the proxy's CPU at each mark, so the loop's CPU is told apart from the session's setup.
    mark("loop")
    latencies = []
    for _ in range(calls):
        t = time.perf_counter_ns()
        spark.conf.get("spark.sql.shuffle.partitions")
        latencies.append((time.perf_counter_ns() - t) / 1000)
    mark("end")
    return {"latencies_us": latencies}


def mark(name):
    """Tells the runner (bench.py) where the timed part starts or ends and waits for its answer."""
    print(f"mark {name}", flush=True)
    sys.stdin.readline()


def upload(spark, megabytes):
    import numpy as np
    import pandas as pd
    rows = megabytes * 1024 * 1024 // 24
    pdf = pd.DataFrame({"a": np.arange(rows, dtype="int64"), "b": np.ones(rows), "c": np.zeros(rows)})
    spark.range(1).collect()
    t = time.perf_counter()
    n = spark.createDataFrame(pdf).count()
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "bytes": int(pdf.memory_usage(index=False).sum()), "rows_ok": n == rows}


if __name__ == "__main__":
    main()
