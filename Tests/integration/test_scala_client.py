"""The Spark Connect Scala client (`bin/spark-shell --remote`, shipped in the PySpark 4.3 distribution) through
Sparkgate over TLS with a token, as the README's Clients section tells a JVM user to run it."""
import os
import subprocess
import threading
import time

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


def test_a_scripted_scala_session_gets_exact_results(gateway, material, truststore):
    url = gateway.url(material.token("scala-ann"))
    output = scala_shell(url, """
val counts = spark.range(10).selectExpr("id % 3 AS k").groupBy("k").count().orderBy("k").collect()
println("RESULT_COUNTS=" + counts.map(r => s"${r.getLong(0)}:${r.getLong(1)}").mkString(","))
spark.sql("SELECT 6 * 7 AS answer").createOrReplaceTempView("answers")
println("RESULT_VIEW=" + spark.table("answers").collect()(0).getInt(0))
println("RESULT_SUM=" + spark.range(1, 101).selectExpr("sum(id)").collect()(0).getLong(0))
spark.stop()
println("RESULT_STOPPED=yes")
""", truststore)
    got = results(output)
    assert got.get("RESULT_COUNTS") == "0:4,1:3,2:3", output[-3000:]
    assert got.get("RESULT_VIEW") == "42"
    assert got.get("RESULT_SUM") == "5050"
    assert got.get("RESULT_STOPPED") == "yes"
    lines = [l for l in gateway.audit_lines() if l.get("user") == "scala-ann"]
    assert {"ExecutePlan", "ReleaseSession"} <= {l["method"] for l in lines}
    assert all(l["status"] == "OK" for l in lines if l["method"] == "ExecutePlan")


def test_two_scala_users_cannot_reach_each_others_session(gateway, material, truststore, tmp_path):
    release = tmp_path / "release"
    owner_out = {}

    def owner():
        owner_out["text"] = scala_shell(gateway.url(material.token("scala-owner")), f"""
spark.sql("SELECT 'owner-only' AS secret").createOrReplaceTempView("secret_view")
println("RESULT_SESSION=" + spark.sessionId)
val deadline = System.currentTimeMillis + 180000
while (!new java.io.File("{release}").exists && System.currentTimeMillis < deadline) Thread.sleep(200)
println("RESULT_OWNER_VIEW=" + spark.table("secret_view").collect()(0).getString(0))
""", truststore)

    t = threading.Thread(target=owner)
    t.start()
    deadline = time.time() + 180
    session = None
    while session is None and time.time() < deadline:
        status, body = gateway.admin("/v1/sessions?user=scala-owner")
        sessions = [s for s in __import__("json").loads(body)["sessions"]] if status == 200 else []
        session = sessions[0]["session_id"] if sessions else None
        time.sleep(1)
    assert session, "the owner's Scala session never appeared"
    try:
        intruder = scala_shell(gateway.url(material.token("scala-intruder"), session_id=session), """
println("RESULT_INTRUDER=" + scala.util.Try(spark.table("secret_view").collect()(0).getString(0)).failed.map(_.getMessage.take(400)).getOrElse("READ IT"))
""", truststore)
        stranger = scala_shell(gateway.url(material.token("scala-stranger")), """
println("RESULT_STRANGER=" + scala.util.Try(spark.table("secret_view").collect()(0).getString(0)).failed.map(_.getMessage.take(400)).getOrElse("READ IT"))
""", truststore)
    finally:
        release.touch()
        t.join(120)
    # Naming the owner's session id is refused outright; a session of one's own has no such view.
    assert f"session {session} belongs to another user" in results(intruder).get("RESULT_INTRUDER", intruder[-2000:])
    assert "TABLE_OR_VIEW_NOT_FOUND" in results(stranger).get("RESULT_STRANGER", stranger[-2000:])
    assert results(owner_out["text"]).get("RESULT_OWNER_VIEW") == "owner-only"
