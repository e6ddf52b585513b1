"""The quickstart's sample query, through Sparkgate."""
import sys

from pyspark.sql import SparkSession

url = sys.argv[1]
spark = SparkSession.builder.remote(url).create()
print("Spark", spark.version, "answered through Sparkgate.")
spark.range(1, 6).selectExpr("id", "id * id as square", "id % 2 = 0 as even").show()
spark.stop()
