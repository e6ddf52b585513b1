"""The same work for Spark's JVM client (`bin/spark-shell --remote`, the Scala REPL of the Spark Connect client)
as client_work.py does for PySpark: exact SQL, a temporary view, another user's session id. Each version's
client comes from the PySpark source distribution on PyPI, which bundles a Spark distribution with it
(`deps/bin/spark-shell`, `deps/jars/connect-repl/spark-connect-client-jvm_2.13-<version>.jar`): the real client
a JVM team runs, its own token header included (`Authentication` in 4.0.0 to 4.0.4 and 4.1.0 to 4.1.3,
`Authorization` from 4.0.5 and 4.1.4)."""
import os
import subprocess
import sys
import tarfile
import tempfile


def spark_home(version, venvs, python=None):
    """A Spark home with the JVM client of `version`: the one this venv's PySpark bundles when it is that
    version, else extracted once from PyPI's source distribution of pyspark==`version`."""
    if python is not None:
        home = subprocess.run([python, "-c", "import os, pyspark; print(pyspark.__version__, os.path.dirname(pyspark.__file__))"],
                              capture_output=True, text=True, check=True).stdout.split()
        if home[0] == version:
            return home[1]
    home = os.path.join(venvs, f"jvm-{version}")
    if os.path.exists(os.path.join(home, ".complete")):
        return home
    print(f"compat: installing Spark's JVM client {version} into {home}", file=sys.stderr, flush=True)
    download = tempfile.mkdtemp(prefix="jvm-client-")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", f"pyspark=={version}", "-d", download], check=True)
    archive = next(os.path.join(download, f) for f in os.listdir(download) if f.endswith(".tar.gz"))
    os.makedirs(home, exist_ok=True)
    with tarfile.open(archive) as tar:
        prefix = f"pyspark-{version}/deps/"
        members = [m for m in tar.getmembers() if m.name.startswith(prefix + "bin/") or m.name.startswith(prefix + "jars/")]
        for m in members:
            m.name = m.name[len(prefix):]
        tar.extractall(home, members=members, filter="tar")
    os.remove(archive)
    open(os.path.join(home, ".complete"), "w").close()
    return home


def truststore(ca, directory):
    path = os.path.join(directory, "sparkgate.jks")
    if not os.path.exists(path):
        subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "sparkgate-ca", "-file", ca, "-keystore", path, "-storepass", "changeit"],
                       check=True, capture_output=True)
    return path


def script_for(checks, other_url):
    """The Scala the shell runs: one RESULT_<check>=OK:<value> or RESULT_<check>=ERR:<message> line per check."""
    lines = ['def report(name: String)(body: => String): Unit = println("RESULT_" + name + "=" + scala.util.Try(body).map("OK:" + _)'
             '.recover { case e => "ERR:" + String.valueOf(e.getMessage).take(600).replace("\\n", " ") }.get)',
             'report("session")(spark.version)']
    if "sql" in checks:
        lines.append('report("sql")(spark.sql("SELECT sum(id) AS s, count(*) AS c FROM range(1000000) WHERE id % 7 <> 3").collect()(0).toSeq.mkString(","))')
    if "temp_view" in checks:
        lines.append('report("temp_view") { spark.range(12).createOrReplaceTempView("jvm_view"); spark.table("jvm_view").count().toString }')
    if "other_user" in checks:
        lines.append(f'report("other_user") {{ val other = org.apache.spark.sql.SparkSession.builder().remote("{other_url}").create(); '
                     'other.table("jvm_view").count().toString }')
    lines.append('report("stop") { spark.stop(); "stopped" }')
    return "\n".join(lines) + "\nSystem.exit(0)\n"


def run(home, url, other_url, checks, ca, workdir, timeout):
    """Runs the work in `home`'s spark-shell --remote (it wants a terminal: `script` gives it one); returns what
    client_work.py returns: per check, {"ok", "value"} or {"ok": False, "error"}."""
    env = {**os.environ, "SPARK_HOME": home,
           "SPARK_SUBMIT_OPTS": f"-Djavax.net.ssl.trustStore={truststore(ca, workdir)} -Djavax.net.ssl.trustStorePassword=changeit"}
    env.pop("SPARK_CONNECT_AUTHENTICATE_TOKEN", None)
    try:
        out = subprocess.run(["script", "-qec", f"{home}/bin/spark-shell --remote '{url}'", "/dev/null"], input=script_for(checks, other_url),
                             capture_output=True, text=True, env=env, timeout=timeout, cwd=workdir)
    except subprocess.TimeoutExpired:
        return {"session": {"ok": False, "error": f"no answer within {timeout} s (a hang)"}}
    text = (out.stdout + out.stderr).replace("\r", "")
    found = {}
    for line in text.splitlines():
        if line.startswith("RESULT_") and "=" in line:
            name, result = line[len("RESULT_"):].split("=", 1)
            found[name] = {"ok": True, "value": result[3:]} if result.startswith("OK:") else {"ok": False, "error": result[4:]}
    if "session" not in found:
        # The shell died before its first line: the first exception it printed says why.
        causes = [l.strip() for l in text.splitlines() if ("Exception" in l or "UNAUTHENTICATED" in l) and not l.strip().startswith("at ")]
        return {"session": {"ok": False, "error": f"the shell could not start a session: {(causes or [' '.join(text.split())[-400:]])[0][:400]}"}}
    if not found["session"]["ok"]:
        return {"session": found["session"]}
    results = {name: found.get(name, {"ok": False, "error": "no result"}) for name in checks}
    results["client"] = found["session"]
    return results
