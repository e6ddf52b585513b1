"""Processes the integration suite starts and stops: Spark Connect, LakeSail Sail, Sparkgate, a JWKS server."""
import contextlib
import copy
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("SPARKGATE_BIN", os.path.join(ROOT, ".build", "debug", "sparkgate"))
# The build operators run, for tests that measure latency under load (the debug build is ~10x slower per call).
RELEASE_BIN = os.environ.get("SPARKGATE_RELEASE_BIN", os.path.join(ROOT, ".build", "release", "sparkgate"))


_handed_out = set()


def free_port():
    """A port nothing listens on, never one this run handed out before: the kernel can give the same free port
    to two calls in a row (a gateway's TLS and admin ports were once one, and a TLS client met the admin's HTTP)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_for_port(port, timeout, proc=None, log=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}:\n{tail(log)}")
        with contextlib.suppress(OSError):
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listened on {port} within {timeout}s:\n{tail(log)}")


def tail(path, lines=40):
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def run_cli(*args, env=None, check=True):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and p.returncode != 0:
        raise RuntimeError(f"sparkgate {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def stop(proc, sig=signal.SIGTERM, timeout=20):
    if proc.poll() is not None:
        return proc.returncode
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


class SparkServer:
    """A real Spark Connect server from a pyspark package (4.3 from this venv, or another version's venv given
    by its `python`), with a backend token."""

    def __init__(self, workdir, token, extra_conf=(), python=None, driver_memory="3g"):
        python = python or sys.executable
        if python == sys.executable:
            import pyspark
            self.home = os.path.dirname(pyspark.__file__)
        else:
            self.home = subprocess.run([python, "-c", "import os, pyspark; print(os.path.dirname(pyspark.__file__))"],
                                       capture_output=True, text=True, check=True).stdout.strip()
        self.port = free_port()
        self.token = token
        self.dir = tempfile.mkdtemp(prefix="spark-", dir=workdir)
        self.log = os.path.join(self.dir, "spark.log")
        conf = [
            f"spark.connect.grpc.binding.port={self.port}",
            "spark.connect.grpc.binding.address=127.0.0.1",  # only this host reaches it, as in the quickstart
            f"spark.connect.authenticate.token={token}",
            # Cut result streams every second so every large result exercises ReattachExecute.
            "spark.connect.execute.reattachable.senderMaxStreamDuration=1s",
            "spark.ui.enabled=false",
            "spark.sql.shuffle.partitions=4",
            "spark.connect.session.manager.maintenanceInterval=2s",
            *extra_conf,
        ]
        script = os.path.join(self.home, "sbin", "start-connect-server.sh")
        if os.path.exists(script):
            args = ["bash", script, "--driver-memory", driver_memory]
        else:
            # pyspark 4.0 to 4.2 bundle the server jar but not the script: submit the server class directly.
            args = [os.path.join(self.home, "bin", "spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
                    "--driver-memory", driver_memory]
        for c in conf:
            args += ["--conf", c]
        # Python UDF workers run with the server's own interpreter, which has its pyspark installed.
        env = {**os.environ, "SPARK_HOME": self.home, "SPARK_NO_DAEMONIZE": "1", "SPARK_LOG_DIR": self.dir, "SPARK_PID_DIR": self.dir,
               "PYSPARK_PYTHON": python}
        env.pop("SPARK_CONNECT_AUTHENTICATE_TOKEN", None)
        self.proc = subprocess.Popen(args, cwd=self.dir, stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_for_port(self.port, 180, self.proc, self.log)

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.port}"

    def close(self):
        stop(self.proc)


class SailServer:
    """LakeSail Sail 0.7.2, a second Spark Connect engine (keys sessions by session id alone)."""

    def __init__(self, workdir):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="sail-", dir=workdir)
        self.log = os.path.join(self.dir, "sail.log")
        # Sail runs from its own venv (scripts/setup-env): its UDF runtime refuses the client's PySpark 4.3.
        sail = os.environ.get("SPARKGATE_SAIL_BIN") or os.path.join(ROOT, ".venv-sail", "bin", "sail")
        if not os.path.exists(sail):
            raise RuntimeError(f"{sail} is missing: run scripts/setup-env (or set SPARKGATE_SAIL_BIN)")
        self.proc = subprocess.Popen([sail, "spark", "server", "--ip", "127.0.0.1", "--port", str(self.port)], cwd=self.dir,
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, 60, self.proc, self.log)

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.port}"

    def close(self):
        stop(self.proc)


AUTO = object()


class Gateway:
    """A `sparkgate serve` process with its own configuration file."""

    def __init__(self, material, config, name="gateway", env=None, port=None, admin_port=None, binary=None):
        self.material = material
        self.binary = binary or BIN
        self.port = port or free_port()
        self.admin_port = admin_port or free_port()
        self.dir = tempfile.mkdtemp(prefix=f"{name}-", dir=material.dir)
        self.config_path = os.path.join(self.dir, "sparkgate.yaml")
        self.audit = os.path.join(self.dir, "audit.jsonl")
        self.log = os.path.join(self.dir, "sparkgate.log")
        self.config = self.own(config)
        token_file = (config.get("admin") or {}).get("token_file")
        self.admin_token = open(token_file).read().strip() if token_file else None
        self.write_config()
        self.env = {**os.environ, **(env or {})}
        self.start()

    def own(self, config):
        """A copy of `config` on this gateway's ports and audit file (tests build several gateways from one dict)."""
        config = copy.deepcopy(config)
        config.setdefault("listen", f"127.0.0.1:{self.port}")
        config.setdefault("admin", {}).setdefault("listen", f"127.0.0.1:{self.admin_port}")
        config.setdefault("audit_log", self.audit)
        return config

    def write_config(self, config=None):
        """Writes `config` (the gateway's own by default) for the next reload or restart."""
        with open(self.config_path, "w") as f:
            json.dump(self.own(config) if config else self.config, f, indent=1)  # JSON is YAML

    def start(self):
        self.proc = subprocess.Popen([self.binary, "serve", "--config", self.config_path], stdout=open(self.log + ".out", "a"),
                                     stderr=open(self.log, "a"), env=self.env, start_new_session=True)
        wait_for_port(self.admin_port, 30, self.proc, self.log)
        wait_for_port(self.port, 30, self.proc, self.log)

    def restart(self):
        self.close()
        self.start()

    def url(self, token=None, **params):
        tls = "tls" in self.config
        parts = [f"sc://localhost:{self.port}/"]
        if tls:
            parts.append("use_ssl=true")
        if token is not None:
            parts.append(f"token={token}")
        parts += [f"{k}={v}" for k, v in params.items()]
        return ";".join(parts)

    def admin(self, path, method="GET", token=AUTO, body=None):
        """An admin request, with the gateway's own admin token unless `token` says otherwise (None: no token)."""
        if token is AUTO:
            token = self.admin_token
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", method=method, data=body)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def audit_lines(self):
        deadline = time.time() + 2
        time.sleep(0.25)  # the audit log is flushed every 100 ms
        lines = []
        while time.time() < deadline:
            if os.path.exists(self.audit):
                with open(self.audit) as f:
                    lines = [json.loads(l) for l in f if l.strip()]
                break
            time.sleep(0.1)
        return lines

    def signal(self, sig):
        os.killpg(self.proc.pid, sig)

    def close(self):
        return stop(self.proc)


class Material:
    """Certificates, keys and tokens for the suite, made with the sparkgate CLI itself."""

    def __init__(self, directory):
        self.dir = directory
        self.certs = os.path.join(directory, "certs")
        run_cli("certs", "generate", "--out", self.certs, "--host", "localhost", "--host", "127.0.0.1")
        self.keys = os.path.join(directory, "keys")
        run_cli("keys", "generate", "--algorithm", "ES256", "--kid", "suite-es256", "--out", self.keys)
        run_cli("keys", "generate", "--algorithm", "ES256", "--kid", "other-es256", "--out", self.keys)
        self.admin_token_file = os.path.join(directory, "admin.token")
        with open(self.admin_token_file, "w") as f:
            f.write("suite-admin-" + os.urandom(16).hex() + "\n")
        self.issuer_config = os.path.join(directory, "issuer.yaml")
        with open(self.issuer_config, "w") as f:
            json.dump(self.base_config(backend_endpoint="127.0.0.1:1"), f)

    @property
    def ca(self):
        return os.path.join(self.certs, "ca.crt")

    def base_config(self, backend_endpoint, tls=True, **overrides):
        config = {
            "auth": {
                "issuer": "sparkgate-suite",
                "audience": "spark-connect",
                "keys": [{"kid": "suite-es256", "algorithm": "ES256",
                          "public_key": os.path.join(self.keys, "suite-es256.pub.pem"),
                          "private_key": os.path.join(self.keys, "suite-es256.key.pem")}],
            },
            "backends": {"local": {"endpoints": [backend_endpoint], "token_env": "SUITE_BACKEND_TOKEN"}},
            "defaults": {"backend": "local", "quotas": {"requests_per_second": 0}},
            "teams": {"analytics": {}, "data-eng": {}},
            "admin": {"token_file": self.admin_token_file},
        }
        if tls:
            config["tls"] = {"certificate": os.path.join(self.certs, "server.crt"), "private_key": os.path.join(self.certs, "server.key")}
        else:
            config["insecure_plaintext"] = True
        for k, v in overrides.items():
            config[k] = v
        return config

    def token(self, user="alice", team="analytics", ttl="1h", kid=None, config=None):
        args = ["token", "issue", "--config", config or self.issuer_config, "--user", user, "--team", team, "--ttl", ttl]
        if kid:
            args += ["--kid", kid]
        return run_cli(*args).stdout.strip()


class JWKSServer:
    """Serves a JWKS document over local HTTP; the test swaps the document to rotate keys."""

    def __init__(self, redirect_to=None):
        self.document = b'{"keys":[]}'
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                if redirect_to:
                    self.send_response(302)
                    self.send_header("location", redirect_to)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(outer.document)))
                self.end_headers()
                self.wfile.write(outer.document)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def grpc_call(gateway, method, request, token=None, client_cert=False, timeout=20, metadata=()):
    """One raw unary call, for statuses PySpark would retry for minutes (UNAVAILABLE) or hide."""
    import grpc
    target = f"localhost:{gateway.port}"
    md = list(metadata)
    if token is not None:
        md.append(("authorization", f"Bearer {token}"))
    options = [("grpc.max_send_message_length", 1 << 28), ("grpc.max_receive_message_length", 1 << 28)]
    if "tls" in gateway.config:
        with open(gateway.material.ca, "rb") as f:
            ca = f.read()
        key = cert = None
        if client_cert:
            with open(os.path.join(gateway.material.certs, "client.key"), "rb") as f:
                key = f.read()
            with open(os.path.join(gateway.material.certs, "client.crt"), "rb") as f:
                cert = f.read()
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(ca, key, cert), options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    with channel:
        call = channel.unary_unary(f"/spark.connect.SparkConnectService/{method}", request_serializer=None, response_deserializer=None)
        return call(request.SerializeToString() if hasattr(request, "SerializeToString") else request, metadata=md, timeout=timeout)


def config_get_request(session_id, *keys, user_id="whoever"):
    from pyspark.sql.connect.proto import base_pb2 as pb
    req = pb.ConfigRequest(session_id=session_id)
    req.user_context.user_id = user_id
    req.operation.get.keys.extend(keys)
    return req


def shared_state(material, redis, **redis_settings):
    """`state` for gateways sharing `redis` (its password, the replicas' secret, a key prefix of their own)."""
    secret = os.path.join(material.dir, "replicas.secret")
    if not os.path.exists(secret):
        with open(secret, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        os.chmod(secret, 0o600)
    settings = {"addresses": [redis.address], "key_prefix": f"t{os.urandom(4).hex()}:", "secret_file": secret, **redis_settings}
    if redis.password_file:
        settings["password_file"] = redis.password_file
    return {"kind": "redis", "redis": settings}


class RedisServer:
    """A real redis-server on a free port, for the shared-state tests; stop() and start() keep the port (and,
    without persistence, lose every key, as a restarted server does)."""

    def __init__(self, workdir, password=None, replica_of=None):
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = free_port()
        self.password = password
        self.replica_of = replica_of
        self.dir = tempfile.mkdtemp(prefix="redis-", dir=workdir)
        self.password_file = None
        if password:
            self.password_file = os.path.join(self.dir, "password")
            with open(self.password_file, "w") as f:
                f.write(password + "\n")
        self.start()

    def start(self):
        # A master otherwise waits 5 s for more replicas before it sends the first one its data
        # (repl-diskless-sync-delay): a test's WAIT for that replica raced the delay.
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--repl-diskless-sync-delay", "0"]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        if self.replica_of:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        log = os.path.join(self.dir, "redis.log")
        self.proc = subprocess.Popen(args, stdout=open(log, "a"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, 20, self.proc, log)
        if self.replica_of:
            # A replica is one once it holds the master's data; before that, WAIT counts it as nothing.
            deadline = time.time() + 20
            while "master_link_status:up" not in self.cli("INFO", "replication"):
                if time.time() > deadline:
                    raise AssertionError(f"redis replica on {self.port} never synced with its master; log: {log}")
                time.sleep(0.05)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def cli(self, *args):
        auth = ["-a", self.password, "--no-auth-warning"] if self.password else []
        return subprocess.run(["redis-cli", "-p", str(self.port), *auth, *args], capture_output=True, text=True, check=True).stdout

    def pause(self):
        """SIGSTOP: the kernel still accepts connections, and nothing answers (a paused container, a wedged proxy)."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def close(self):
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)
        return stop(self.proc)


class RedisSentinel:
    """Debian's redis-sentinel watching a master (quorum 1), quick to fail it over."""

    def __init__(self, workdir, master_name, master_port, password=None):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="sentinel-", dir=workdir)
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                    f"sentinel monitor {master_name} 127.0.0.1 {master_port} 1\n"
                    f"sentinel down-after-milliseconds {master_name} 1000\n"
                    f"sentinel failover-timeout {master_name} 5000\n")
            if password:
                f.write(f"sentinel auth-pass {master_name} {password}\n")
        binary = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
        self.proc = subprocess.Popen([binary, conf], stdout=open(os.path.join(self.dir, "sentinel.log"), "a"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for_port(self.port, 20, self.proc, os.path.join(self.dir, "sentinel.log"))

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def master(self, name):
        out = subprocess.run(["redis-cli", "-p", str(self.port), "SENTINEL", "get-master-addr-by-name", name], capture_output=True, text=True).stdout
        return ":".join(out.split())

    def close(self):
        return stop(self.proc)


class TCPProxy:
    """Forwards a local port to `target` ("host:port"); close() drops the listener and every connection, as a
    dying server would, and start() brings it back on the same port."""

    def __init__(self, target):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.port = free_port()
        self.lock = threading.Lock()
        self.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        if getattr(self, "listening", False):
            return
        self.listening = True
        self.sockets = []
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                # A connection accepted while close() ran belongs to a server that is gone.
                if listener is not self.listener or not self.listening:
                    for s in (client, upstream):
                        s.close()
                    return
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self):
        with self.lock:
            self.listening = False
            sockets, self.sockets = self.sockets, []
        # close() alone leaves a thread blocked in accept() listening on Linux (the call holds the socket), so
        # the next connection would still reach the server; shutdown() ends the accept first.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.listener.close()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
                s.close()
