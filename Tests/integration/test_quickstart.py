"""scripts/quickstart as a newcomer runs it: output piped into `tee`, then Ctrl-C. Everything it started
stops, every port it took is free again, and no job-control noise is printed."""
import os
import signal
import socket
import subprocess
import time

import pytest

import harness

PORTS = (15002, 15443, 9464)


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_ctrl_c_on_a_piped_quickstart_stops_spark_and_sparkgate(tmp_path):
    if any(listening(p) for p in PORTS):
        pytest.skip(f"one of the quickstart's ports {PORTS} is in use on this machine")
    log = tmp_path / "quickstart.log"
    # A new session stands in for the terminal: Ctrl-C sends SIGINT to its whole foreground group, the script
    # and `tee` alike, so tee dies and the script's later messages go to a dead pipe.
    shell = subprocess.Popen(["bash", "-c", f"scripts/quickstart 2>&1 | tee {log}"], cwd=harness.ROOT, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = os.path.join(harness.ROOT, ".sparkgate-run")
    try:
        deadline = time.time() + 600
        while time.time() < deadline and "press Ctrl-C to stop both" not in (log.read_text() if log.exists() else ""):
            assert shell.poll() is None, f"quickstart exited early:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        assert all(listening(p) for p in PORTS), "the quickstart said it was ready, but its ports are not all open"
        pids = [int(open(os.path.join(run, f)).read()) for f in os.listdir(run) if f.endswith(".pid")]
        assert len(pids) == 2
        os.killpg(shell.pid, signal.SIGINT)
        shell.wait(60)
        deadline = time.time() + 30
        while time.time() < deadline and (any(listening(p) for p in PORTS) or any(alive(pid) for pid in pids)):
            time.sleep(0.5)
        assert not any(listening(p) for p in PORTS), "a port is still held after Ctrl-C"
        assert not any(alive(pid) for pid in pids), "a server outlived the quickstart"
        assert "Terminated" not in log.read_text()
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
        subprocess.run(["bash", "-c", 'for f in .sparkgate-run/*.pid; do [ -f "$f" ] && kill -KILL -- "-$(cat "$f")" 2>/dev/null; rm -f "$f"; done; true'],
                       cwd=harness.ROOT)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every purpose here.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
