"""The Spark Connect Scala client (`bin/spark-shell --remote`, shipped in the PySpark 4.3 distribution) through
Sparkgate over TLS with a token, as the README's Clients section tells a JVM user to run it."""
import os
import subprocess
import uuid

import pytest

import harness



def spark_home():
    import pyspark
    return os.path.dirname(pyspark.__file__)


@pytest.fixture(scope="module")
def truststore(material, tmp_path_factory):
    """The dev CA in a JKS truststore, made with keytool as the README says."""
    path = str(tmp_path_factory.mktemp("jvm") / "sparkgate.jks")
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "sparkgate-dev-ca", "-file", material.ca, "-keystore", path,
                    "-storepass", "changeit"], check=True, capture_output=True)
    return path


def scala_shell(url, script, truststore, timeout=240):
    """Runs `script` in spark-shell --remote (it needs a terminal: `script` gives it one); returns its output."""
    env = {**os.environ, "SPARK_HOME": spark_home(),
           "SPARK_SUBMIT_OPTS": f"-Djavax.net.ssl.trustStore={truststore} -Djavax.net.ssl.trustStorePassword=changeit"}
    command = f"{spark_home()}/bin/spark-shell --remote '{url}'"
    out = subprocess.run(["script", "-qec", command, "/dev/null"], input=script + "\nSystem.exit(0)\n", capture_output=True, text=True,
                         env=env, timeout=timeout)
    return out.stdout + out.stderr


def results(output):
    return dict(line.split("=", 1) for line in output.replace("\r", "").splitlines() if line.startswith("RESULT_"))


def test_a_scala_session_gets_exact_results_and_other_scala_users_cannot_reach_it(gateway, material, truststore):
    # One JVM (a spark-shell takes 15 s to start): the shell's own session, then two more users' sessions
    # built in it, each with its own token, as two other programs would.
    session = str(uuid.uuid4())  # the client's own session id is not public API: name it in the URL
    intruder_url = gateway.url(material.token("scala-intruder"), session_id=session)
    stranger_url = gateway.url(material.token("scala-stranger"), session_id=str(uuid.uuid4()))
    output = scala_shell(gateway.url(material.token("scala-ann"), session_id=session), f"""
val counts = spark.range(10).selectExpr("id % 3 AS k").groupBy("k").count().orderBy("k").collect()
println("RESULT_COUNTS=" + counts.map(r => s"${{r.getLong(0)}}:${{r.getLong(1)}}").mkString(","))
spark.sql("SELECT 6 * 7 AS answer").createOrReplaceTempView("answers")
println("RESULT_VIEW=" + spark.table("answers").collect()(0).getInt(0))
println("RESULT_SUM=" + spark.range(1, 101).selectExpr("sum(id)").collect()(0).getLong(0))
def attempt(s: org.apache.spark.sql.SparkSession) =
  scala.util.Try(s.table("answers").collect()(0).getInt(0).toString).failed.map(_.getMessage.take(400).replace("\\n", " ")).getOrElse("READ IT")
val intruder = org.apache.spark.sql.SparkSession.builder().remote("{intruder_url}").create()
println("RESULT_INTRUDER=" + attempt(intruder))
val stranger = org.apache.spark.sql.SparkSession.builder().remote("{stranger_url}").create()
println("RESULT_STRANGER=" + attempt(stranger))
println("RESULT_STILL_MINE=" + spark.table("answers").collect()(0).getInt(0))
spark.stop()
println("RESULT_STOPPED=yes")
""", truststore)
    got = results(output)
    assert got.get("RESULT_COUNTS") == "0:4,1:3,2:3", output[-3000:]
    assert got.get("RESULT_VIEW") == "42"
    assert got.get("RESULT_SUM") == "5050"
    # Naming the owner's session id is refused outright; a session of one's own has no such view.
    assert f"session {session} belongs to another user" in got.get("RESULT_INTRUDER", output[-2000:]), output[-3000:]
    assert "TABLE_OR_VIEW_NOT_FOUND" in got.get("RESULT_STRANGER", output[-2000:])
    assert got.get("RESULT_STILL_MINE") == "42"
    assert got.get("RESULT_STOPPED") == "yes"
    lines = [l for l in gateway.audit_lines() if l.get("user") == "scala-ann"]
    assert {"ExecutePlan", "ReleaseSession"} <= {l["method"] for l in lines}
    assert all(l["status"] == "OK" for l in lines if l["method"] == "ExecutePlan")
