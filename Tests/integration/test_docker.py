"""docker/: the files parse, the containers run the commands the scripts run, and the container's
configuration works against a real Spark Connect server (no Docker engine runs here)."""
import os
import re
import shutil
import subprocess
import urllib.request

import yaml

import harness

DOCKER = os.path.join(harness.ROOT, "docker")


def test_compose_and_dockerfile_run_the_tested_commands():
    compose = yaml.safe_load(open(os.path.join(DOCKER, "compose.yaml")))
    services = compose["services"]
    assert set(services) == {"spark", "sparkgate", "prometheus", "grafana"}
    assert services["sparkgate"]["command"] == ["serve", "--config", "/etc/sparkgate/sparkgate.yaml"]
    dockerfile = open(os.path.join(DOCKER, "Dockerfile")).read()
    assert 'CMD ["serve", "--config", "/etc/sparkgate/sparkgate.yaml"]' in dockerfile
    assert "USER sparkgate" in dockerfile and "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    # The image is built with the operators' install command.
    assert "DESTDIR=/out scripts/install --static --prefix /usr/local" in dockerfile
    assert "COPY --from=build /out/usr/local/bin/sparkgate /usr/local/bin/sparkgate" in dockerfile
    spark = services["spark"]
    assert spark["command"][0].endswith("sbin/start-connect-server.sh")
    assert spark["environment"]["SPARK_NO_DAEMONIZE"] == "1"
    # The backend token comes from a file secret, into Spark's environment, never onto its command line.
    assert "SPARK_CONNECT_AUTHENTICATE_TOKEN=$(cat /run/secrets/spark_token)" in spark["entrypoint"][2]
    assert not any("authenticate.token" in part for part in spark["command"])
    assert "spark_token" in spark["secrets"] and "spark_token" in services["sparkgate"]["secrets"]
    # Only Sparkgate reaches Spark Connect: their network is internal and nobody else joins it, no port published.
    assert spark["networks"] == ["engine"] and "ports" not in spark
    assert compose["networks"]["engine"]["internal"] is True
    assert [name for name, s in services.items() if "engine" in s.get("networks", [])] == ["spark", "sparkgate"]
    config = yaml.safe_load(open(os.path.join(DOCKER, "sparkgate.yaml")))
    assert config["backends"]["spark"]["token_file"] == "/run/secrets/spark_token"
    assert re.match(r"apache/spark:4\.3\.", spark["image"])
    quickstart = open(os.path.join(harness.ROOT, "scripts", "quickstart")).read()
    assert "start-connect-server.sh" in quickstart and "SPARK_NO_DAEMONIZE=1" in quickstart
    assert '"$BIN" serve --config "$CONFIG"' in quickstart
    prometheus = yaml.safe_load(open(os.path.join(DOCKER, "prometheus.yml")))
    job = prometheus["scrape_configs"][0]
    assert job["static_configs"][0]["targets"] == ["sparkgate:9464"]
    assert job["authorization"]["credentials_file"] == "/run/secrets/admin_token"


def test_the_container_configuration_serves_and_is_scraped(spark, material, backend_token, tmp_path, connect):
    admin_token = "scrape-" + os.urandom(8).hex()
    token_file = tmp_path / "admin_token"
    token_file.write_text(admin_token + "\n")
    spark_token_file = tmp_path / "spark_token"
    spark_token_file.write_text(backend_token + "\n")
    dev = tmp_path / "dev"
    os.symlink(material.certs, dev, target_is_directory=True)
    text = open(os.path.join(DOCKER, "sparkgate.yaml")).read()
    port, admin = harness.free_port(), harness.free_port()
    text = (text.replace("/etc/sparkgate/dev/dev-es256.pub.pem", os.path.join(material.keys, "suite-es256.pub.pem"))
            .replace("kid: dev-es256", "kid: suite-es256").replace("issuer: sparkgate-dev", "issuer: sparkgate-suite")
            .replace("/etc/sparkgate/dev", str(dev)).replace("/run/secrets/admin_token", str(token_file))
            .replace("/run/secrets/spark_token", str(spark_token_file))
            .replace('"spark:15002"', f'"{spark.endpoint}"').replace('"0.0.0.0:15443"', f'"127.0.0.1:{port}"')
            .replace('"0.0.0.0:9464"', f'"127.0.0.1:{admin}"').replace("audit_log: stdout", f"audit_log: {tmp_path / 'audit.jsonl'}"))
    config = tmp_path / "sparkgate.yaml"
    config.write_text(text)
    check = harness.run_cli("config", "check", "--config", str(config))
    assert "OK" in check.stdout
    import yaml as _yaml
    gw = harness.Gateway(material, _yaml.safe_load(text), name="docker-config", port=port, admin_port=admin)
    try:
        spark_session = connect(gw.url(material.token("alice")))
        assert spark_session.range(7).count() == 7
        request = urllib.request.Request(f"http://127.0.0.1:{gw.admin_port}/metrics", headers={"Authorization": f"Bearer {admin_token}"})
        with urllib.request.urlopen(request) as r:
            assert b"sparkgate_rpcs_total" in r.read()
        assert gw.admin("/metrics", token=None)[0] == 401
        assert gw.admin("/healthz")[0] == 200
        spark_session.stop()
    finally:
        gw.close()


def test_the_replicas_override_shares_state_and_balances_over_both():
    class Loader(yaml.SafeLoader):
        pass
    for tag in ("!override", "!reset"):
        Loader.add_constructor(tag, lambda loader, node: loader.construct_sequence(node))
    services = yaml.load(open(os.path.join(DOCKER, "compose.replicas.yaml")), Loader=Loader)["services"]
    assert set(services) == {"redis", "sparkgate", "sparkgate-b", "balancer"}
    for name in ("sparkgate", "sparkgate-b"):
        assert set(services[name]["networks"]) == {"engine", "edge", "state"}
        assert "./sparkgate-replicas.yaml:/etc/sparkgate/sparkgate.yaml:ro" in services[name]["volumes"]
    assert services["sparkgate"]["ports"] == [] and services["balancer"]["ports"] == ["15443:15443"]
    assert services["redis"]["networks"] == ["state"]  # Redis is reachable by the replicas only
    single = yaml.safe_load(open(os.path.join(DOCKER, "sparkgate.yaml")))
    replicas = yaml.safe_load(open(os.path.join(DOCKER, "sparkgate-replicas.yaml")))
    assert replicas.pop("state") == {"kind": "redis", "redis": {"addresses": ["redis:6379"]},
                                      "failure_policy": {"quotas": "fail_open", "ownership": "fail_closed"}}
    assert replicas == single
    cfg = open(os.path.join(DOCKER, "haproxy-replicas.cfg")).read()
    assert "server a sparkgate:15443" in cfg and "server b sparkgate-b:15443" in cfg and "mode tcp" in cfg
    if shutil.which("haproxy"):
        check = subprocess.run(["haproxy", "-c", "-f", os.path.join(DOCKER, "haproxy-replicas.cfg")], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
