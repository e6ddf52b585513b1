"""The processes a benchmark run starts: backends (Spark, the synthetic backend) and the proxies in front."""
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "integration"))
from harness import free_port, wait_for_port, stop  # noqa: E402


class Proc:
    def __init__(self, name, args, cwd, env=None, log=None):
        self.name = name
        self.log = log or os.path.join(cwd, f"{name}.log")
        self.proc = subprocess.Popen(args, cwd=cwd, stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})}, start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def close(self):
        stop(self.proc)


def material(workdir, binary):
    """What every proxy path needs, made with Sparkgate's own commands: a development CA and a certificate for
    localhost and 127.0.0.1, an ES256 key (Sparkgate, HAProxy) and an HS256 secret (spark-connect-proxy)."""
    sg = lambda *a: subprocess.run([binary, *a], capture_output=True, text=True, check=True)
    certs, keys = os.path.join(workdir, "certs"), os.path.join(workdir, "keys")
    sg("certs", "generate", "--out", certs, "--host", "localhost", "--host", "127.0.0.1")
    sg("keys", "generate", "--algorithm", "ES256", "--kid", "bench-es256", "--out", keys)
    sg("keys", "generate", "--algorithm", "HS256", "--kid", "bench-hs256", "--out", keys)
    return {"cert": os.path.join(certs, "server.crt"), "key": os.path.join(certs, "server.key"),
            "ca": os.path.join(certs, "ca.crt"), "es_pub": os.path.join(keys, "bench-es256.pub.pem"),
            "es_key": os.path.join(keys, "bench-es256.key.pem"), "hs_secret": os.path.join(keys, "bench-hs256.secret")}


def cpu_ns(pids):
    """CPU time in nanoseconds of every thread of every process in `pids` (and their child processes)."""
    total = 0
    seen = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return total


def peak_rss_bytes(pids):
    """The largest peak resident set (VmHWM) among `pids`."""
    peak = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            pass
    return peak


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def spark_server(workdir, python):
    import pyspark
    home = os.path.dirname(pyspark.__file__)
    port = free_port()
    d = os.path.join(workdir, "spark")
    os.makedirs(d, exist_ok=True)
    conf = [f"spark.connect.grpc.binding.port={port}", "spark.ui.enabled=false"]
    args = ["bash", os.path.join(home, "sbin", "start-connect-server.sh"), "--driver-memory", "4g"]
    for c in conf:
        args += ["--conf", c]
    env = {"SPARK_HOME": home, "SPARK_NO_DAEMONIZE": "1", "SPARK_LOG_DIR": d, "SPARK_PID_DIR": d, "PYSPARK_PYTHON": python}
    p = Proc("spark", args, d, env=env)
    os.environ.pop("SPARK_CONNECT_AUTHENTICATE_TOKEN", None)
    wait_for_port(port, 240, p.proc, p.log)
    p.port = port
    return p


def synthetic_server(workdir, binary):
    port = free_port()
    p = Proc("synthetic", [binary, "--port", str(port), "--stats", os.path.join(workdir, "synthetic-stats.json")], workdir)
    wait_for_port(port, 30, p.proc, p.log)
    p.port = port
    p.stats_file = os.path.join(workdir, "synthetic-stats.json")
    return p


def synthetic_stats(p):
    """Completed streams so far (the backend writes them on SIGUSR1)."""
    import json
    if os.path.exists(p.stats_file):
        os.remove(p.stats_file)
    os.kill(p.pid, signal.SIGUSR1)
    for _ in range(100):
        if os.path.exists(p.stats_file):
            try:
                with open(p.stats_file) as f:
                    return json.load(f)
            except ValueError:
                pass
        time.sleep(0.05)
    raise RuntimeError("the synthetic backend did not report its stats")


def sparkgate(workdir, binary, material, spark_port, synthetic_port, namespace=True, name="sparkgate", extra_args=(), state=None, tracing=None,
              legacy=False):
    """Sparkgate as users run it: TLS, ES256 JWTs, isolation (user_context rewrite, namespacing, foreign-session
    refusal) and quotas on (limits high enough not to refuse benchmark traffic), audit log to a file. `legacy`:
    a build from before admin.read_token_file (a baseline), whose admin GETs need no token."""
    import json
    port, admin = free_port(), free_port()
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    quotas = {"max_sessions_per_user": 100000, "max_concurrent_operations_per_session": 4096, "max_concurrent_operations_per_team": 100000,
              "requests_per_second": 1000000, "request_burst": 1000000}
    # The admin API answers no one without a token: the session count is read with a read-only one.
    read_token = os.urandom(16).hex()
    read_token_file = os.path.join(d, "admin-read.token")
    with open(read_token_file, "w") as f:
        f.write(read_token)
    os.chmod(read_token_file, 0o600)
    config = {
        "listen": f"127.0.0.1:{port}",
        "tls": {"certificate": material["cert"], "private_key": material["key"]},
        "admin": {"listen": f"127.0.0.1:{admin}", **({} if legacy else {"read_token_file": read_token_file})},
        "auth": {"issuer": "bench", "audience": "spark-connect",
                 "keys": [{"kid": "bench-es256", "algorithm": "ES256", "public_key": material["es_pub"], "private_key": material["es_key"]},
                          {"kid": "bench-hs256", "algorithm": "HS256", "secret_file": material["hs_secret"]}]},
        "backends": {"spark": {"endpoints": [f"127.0.0.1:{spark_port}"]}, "synthetic": {"endpoints": [f"127.0.0.1:{synthetic_port}"]}},
        "defaults": {"backend": "spark", "quotas": quotas},
        "teams": {"bench": {"backend": "spark"}, "bench-synthetic": {"backend": "synthetic"}},
        "audit_log": os.path.join(d, "audit.jsonl"),
        "sessions": {"namespace_session_ids": namespace},
    }
    if state:
        config["state"] = state
    if tracing:
        config["tracing"] = tracing
    path = os.path.join(d, "sparkgate.yaml")
    with open(path, "w") as f:
        json.dump(config, f, indent=1)
    p = Proc(name, [binary, "serve", "--config", path, "--log-level", "warning", *extra_args], d)
    wait_for_port(port, 30, p.proc, p.log)
    p.port, p.admin, p.config, p.admin_token = port, admin, path, read_token
    return p


def floor(workdir, binary, material, spark_port, synthetic_port, threads=None, stack="nghttp2"):
    """The minimal forwarder (Benchmarks/MinimalForwarder): Sparkgate's TLS and HTTP/2 stack with no gateway
    work, the floor of what a call can cost on it. `stack`: nghttp2 (Sparkgate's), nio (swift-nio-http2, the
    stack Sparkgate left) or nghttp2-raw (nghttp2 sessions without the frame adapter between them)."""
    port_s, port_y = free_port(), free_port()
    name = "floor" if stack == "nghttp2" else f"floor-{stack}"
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    args = [binary, "--cert", material["cert"], "--key", material["key"], "--route", f"{port_s}=127.0.0.1:{spark_port}",
            "--route", f"{port_y}=127.0.0.1:{synthetic_port}", "--stack", stack] + (["--threads", str(threads)] if threads else [])
    p = Proc(name, args, d)
    wait_for_port(port_s, 30, p.proc, p.log)
    wait_for_port(port_y, 30, p.proc, p.log)
    p.ports = {"spark": port_s, "synthetic": port_y}
    return p


def nghttpx(workdir, material, backend_port, name, workers=2):
    """nghttpx (Debian's nghttp2-proxy): nghttp2's own TLS proxy, HTTP/2 to the backend. One process per
    backend (nghttpx routes by path, and both backends serve the same paths)."""
    port = free_port()
    d = os.path.join(workdir, f"nghttpx-{name}")
    os.makedirs(d, exist_ok=True)
    args = ["nghttpx", "--conf=/dev/null", f"--frontend=127.0.0.1,{port}", f"--backend=127.0.0.1,{backend_port};;proto=h2", f"--workers={workers}",
            "--no-ocsp", "--no-via", "--no-server-rewrite", "--frontend-http2-max-concurrent-streams=1000",
            "--backend-http2-max-concurrent-streams=1000", "--frontend-read-timeout=1h", "--backend-read-timeout=1h",
            "--frontend-http2-read-timeout=1h", "--backend-write-timeout=1h", "--frontend-write-timeout=1h",
            "--accesslog-file=/dev/null", f"--errorlog-file={d}/error.log", "--no-add-x-forwarded-proto", material["key"], material["cert"]]
    p = Proc(f"nghttpx-{name}", args, d)
    wait_for_port(port, 30, p.proc, p.log)
    p.port = port
    return p


def haproxy(workdir, material, spark_port, synthetic_port):
    """HAProxy 2.6: TLS, `proto h2` to the backend, ES256 `jwt_verify` of the bearer token with an exp check."""
    port_s, port_y = free_port(), free_port()
    d = os.path.join(workdir, "haproxy")
    os.makedirs(d, exist_ok=True)
    pem = os.path.join(d, "server.pem")
    with open(pem, "w") as f:
        f.write(open(material["cert"]).read() + open(material["key"]).read())
    frontends = ""
    for name, port, backend in (("spark", port_s, spark_port), ("synthetic", port_y, synthetic_port)):
        frontends += f"""
frontend fe_{name}
    bind 127.0.0.1:{port} ssl crt {pem} alpn h2
    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
    http-request deny deny_status 401 unless {{ var(txn.alg) -m str ES256 }}
    http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_verify(txn.alg,"{material['es_pub']}") -m int 1 }}
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
    http-request set-var(txn.now) date()
    http-request deny deny_status 401 if {{ var(txn.exp),sub(txn.now) -m int lt 0 }}
    default_backend be_{name}

backend be_{name}
    server s1 127.0.0.1:{backend} proto h2
"""
    cfg = f"""global
    nbthread 2
    tune.h2.max-concurrent-streams 1000
    tune.bufsize 65536

defaults
    mode http
    timeout connect 5s
    timeout client 1h
    timeout server 1h
{frontends}"""
    path = os.path.join(d, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(cfg)
    check = subprocess.run(["haproxy", "-c", "-f", path], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy config: {check.stdout}{check.stderr}")
    p = Proc("haproxy", ["haproxy", "-db", "-f", path], d)
    wait_for_port(port_s, 30, p.proc, p.log)
    p.ports = {"spark": port_s, "synthetic": port_y}
    return p


def nginx(workdir, material, spark_port, synthetic_port):
    """nginx: TLS and grpc_pass (OSS nginx has no JWT check)."""
    port_s, port_y = free_port(), free_port()
    d = os.path.join(workdir, "nginx")
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    servers = ""
    for name, port, backend in (("spark", port_s, spark_port), ("synthetic", port_y, synthetic_port)):
        # Upstream keepalive, as an operator would configure it: without it nginx opens a backend
        # connection per call.
        servers += f"""
    upstream {name} {{
        server 127.0.0.1:{backend};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {material['cert']};
        ssl_certificate_key {material['key']};
        location / {{
            grpc_pass grpc://{name};
        }}
    }}
"""
    cfg = f"""worker_processes 2;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp;
    client_max_body_size 0;
    client_body_timeout 1h;
    grpc_read_timeout 1h;
    grpc_send_timeout 1h;
    http2_max_concurrent_streams 1000;
    http2_recv_buffer_size 1m;
    keepalive_requests 1000000;
{servers}}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(cfg)
    p = Proc("nginx", ["nginx", "-c", path, "-p", d], d)
    wait_for_port(port_s, 30, p.proc, p.log)
    p.ports = {"spark": port_s, "synthetic": port_y}
    return p


def spark_connect_proxy(workdir, venv, material, backend_port, name):
    """spark-connect-proxy 0.0.14 (PyPI): TLS and HS256 JWTs, in its own venv (it pins pyspark 3.5.1)."""
    port = free_port()
    d = os.path.join(workdir, f"scp-{name}")
    os.makedirs(d, exist_ok=True)
    secret = open(material["hs_secret"]).read().strip()
    args = [os.path.join(venv, "bin", "spark-connect-proxy-server"), "--spark-connect-server-url", f"localhost:{backend_port}",
            "--port", str(port), "--tls", material["cert"], material["key"], "--enable-auth", "--jwt-audience", "spark-connect",
            "--secret-key", secret, "--log-level", "WARNING"]
    p = Proc(f"scp-{name}", args, d)
    wait_for_port(port, 60, p.proc, p.log)
    p.port = port
    return p


def otlp_sink(workdir, python):
    """Where the tracing paths post their spans: a process of its own, so its CPU is not the gateway's."""
    port = free_port()
    d = os.path.join(workdir, "otlp-sink")
    os.makedirs(d, exist_ok=True)
    p = Proc("otlp-sink", [python, os.path.join(os.path.dirname(os.path.abspath(__file__)), "otlp_sink.py"), str(port)], d)
    wait_for_port(port, 20, p.proc, p.log)
    p.port = port
    return p


def redis_server(workdir):
    """Debian's redis-server, for Sparkgate's shared state: no persistence, loopback only."""
    port = free_port()
    d = os.path.join(workdir, "redis")
    os.makedirs(d, exist_ok=True)
    p = Proc("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], d)
    wait_for_port(port, 20, p.proc, p.log)
    p.port = port
    return p
