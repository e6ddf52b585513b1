"""Fixtures for the integration suite: real PySpark 4.3 through Sparkgate to real Spark Connect 4.3 (and Sail).

Everything is started on free ports and stopped at the end; nothing is left running.
"""
import os
import tempfile

import pytest

import harness

# The material (and the dev CA the clients trust) must exist before grpc reads GRPC_DEFAULT_SSL_ROOTS_FILE_PATH.
WORKDIR = tempfile.mkdtemp(prefix="sparkgate-it-")
MATERIAL = harness.Material(WORKDIR)
os.environ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = MATERIAL.ca
os.environ.pop("SPARK_CONNECT_AUTHENTICATE_TOKEN", None)
BACKEND_TOKEN = "suite-backend-token-" + os.urandom(8).hex()
os.environ["SUITE_BACKEND_TOKEN"] = BACKEND_TOKEN


@pytest.fixture(scope="session")
def material():
    return MATERIAL


@pytest.fixture(scope="session")
def backend_token():
    return BACKEND_TOKEN


@pytest.fixture(scope="session")
def spark():
    server = harness.SparkServer(WORKDIR, BACKEND_TOKEN)
    yield server
    server.close()


@pytest.fixture(scope="session")
def sail():
    server = harness.SailServer(WORKDIR)
    yield server
    server.close()


@pytest.fixture(scope="session")
def gateway(spark, material):
    """The default gateway: TLS, ES256 JWTs, namespacing on, two teams, no rate limit."""
    gw = harness.Gateway(material, material.base_config(spark.endpoint), name="default")
    yield gw
    gw.close()


@pytest.fixture
def make_gateway(material):
    """A gateway with its own configuration, stopped when the test ends."""
    started = []

    def make(config, **kwargs):
        gw = harness.Gateway(material, config, **kwargs)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.close()


@pytest.fixture
def connect():
    """Opens PySpark sessions (each a new client) and stops them when the test ends."""
    from pyspark.sql import SparkSession

    sessions = []

    def open_session(url):
        s = SparkSession.builder.remote(url).create()
        sessions.append((s, url))
        return s

    yield open_session
    import re
    import socket
    import threading
    for s, url in sessions:
        # stop() retries UNAVAILABLE for minutes if the gateway is already gone, holding PySpark's class-wide
        # session lock: release the session outside that lock, bounded, then stop without releasing again.
        # A gateway the test stopped has nothing to release.
        port = re.match(r"sc://[^:/]+:(\d+)", url)
        try:
            socket.create_connection(("127.0.0.1", int(port.group(1))), timeout=0.5).close() if port else None
            reachable = True
        except OSError:
            reachable = False
        if reachable and not s.is_stopped:
            t = threading.Thread(target=lambda: _quietly(s.client.release_session), daemon=True)
            t.start()
            t.join(5)
        s.release_session_on_close = False
        # close() waits up to 10 s for ReleaseExecute calls still retrying; the session's release (or the
        # gateway's end) already ended their operations.
        if hasattr(s.client, "_release_futures"):
            s.client._release_futures = type(s.client._release_futures)()
        _quietly(s.stop)


def _quietly(fn):
    try:
        fn()
    except Exception:
        pass


MEASUREMENTS = []


@pytest.fixture
def measure():
    """Records a figure to print at the end of the run (e.g. direct vs Sparkgate timings)."""
    return MEASUREMENTS.append


def pytest_terminal_summary(terminalreporter):
    if MEASUREMENTS:
        terminalreporter.section("measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session, exitstatus):
    import shutil
    if exitstatus == 0:
        shutil.rmtree(WORKDIR, ignore_errors=True)
    else:
        print(f"\nintegration work directory kept for inspection: {WORKDIR}")
