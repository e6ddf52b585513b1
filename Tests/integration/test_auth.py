"""Authentication: real PySpark against Sparkgate, Spark started with spark.connect.authenticate.token."""
import json
import os
import time
import uuid

import grpc
import pytest

import harness


def test_issued_token_works_end_to_end(gateway, material, connect):
    spark = connect(gateway.url(material.token(user="ada", team="data-eng", ttl="10m")))
    assert spark.range(10).count() == 10
    lines = [l for l in gateway.audit_lines() if l.get("session_id") == str(spark.session_id)]
    assert lines and all(l["user"] == "ada" and l["team"] == "data-eng" for l in lines)


def test_a_bad_token_fails_in_pyspark_with_the_gateways_reason(gateway, material, connect):
    """One real client shows PySpark surfaces the gateway's status and reason, without the token; every reason
    (no token, expired, forged, wrong audience, unknown key, unknown team) is checked in memory
    (SparkgateServerTests/RefusalsInMemoryTests.badTokens)."""
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException
    # Names the gateway's key id but is signed by another key.
    token = signed_token(material, "other-es256", kid="suite-es256")
    with pytest.raises(SparkConnectGrpcException) as info:
        connect(gateway.url(token)).range(1).collect()
    assert "UNAUTHENTICATED" in str(info.value.getGrpcStatusCode())
    assert "signature does not verify with key 'suite-es256'" in str(info.value)
    assert token not in str(info.value)


def test_backend_refuses_a_client_that_bypasses_sparkgate(spark, connect):
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException
    with pytest.raises(SparkConnectGrpcException) as info:
        connect(f"sc://localhost:{spark.port}/;token=guessing").range(1).collect()
    assert "UNAUTHENTICATED" in str(info.value.getGrpcStatusCode())


def test_auth_failures_are_counted_by_reason(gateway, material):
    with pytest.raises(grpc.RpcError):
        harness.grpc_call(gateway, "Config", harness.config_get_request(str(uuid.uuid4()), "x"), token="not.a.jwt")
    from prometheus_client.parser import text_string_to_metric_families
    status, text = gateway.admin("/metrics")
    counts = {s.labels["reason"]: s.value for f in text_string_to_metric_families(text) if f.name == "sparkgate_auth_failures" for s in f.samples if s.name.endswith("_total")}
    assert counts.get("malformed_token", 0) >= 1


def test_jwks_url_rotates_keys_without_a_restart(spark, material, make_gateway, connect):
    from cryptography.hazmat.primitives import serialization
    jwks = harness.JWKSServer()
    try:
        config = material.base_config(spark.endpoint)
        config["auth"]["keys"] = []
        config["auth"]["jwks_urls"] = [{"url": jwks.url, "allow_plaintext": True}]
        # The first rotation must come from the unknown-kid refresh (the periodic one is 12 s away); after it,
        # unknown kids may not refetch for 30 s, so the second comes from the periodic refresh.
        config["auth"]["jwks_refresh_seconds"] = 12
        # Before the gateway starts: its periodic refresh comes 12 s after its start, so after started + 12.
        started = time.time()
        gw = make_gateway(config, name="jwks")
        jwks.document = jwk_set(material, "suite-es256")
        time.sleep(0.2)
        # The first token names a kid the gateway has not fetched yet (its startup fetch saw an empty set):
        # the unknown kid triggers one refresh, and the call succeeds.
        spark1 = connect(gw.url(material.token()))
        assert spark1.range(3).count() == 3
        # Rotate: the identity provider now signs with other-es256 and drops suite-es256.
        jwks.document = jwk_set(material, "other-es256")
        other = material.token(kid="other-es256", config=other_key_config(material))
        if time.time() - started < 8:  # well before the periodic refresh
            hits = jwks.hits
            with pytest.raises(Exception, match="unknown key id 'other-es256'"):
                connect(gw.url(other)).range(1).count()
            assert jwks.hits == hits, "an unknown kid refetched the JWKS within 30 s of the last refetch"
        # The startup fetch, the unknown kid's refresh, then the periodic one.
        deadline = time.time() + 30
        while jwks.hits < 3 and time.time() < deadline:
            time.sleep(0.2)
        assert jwks.hits >= 3, "the periodic refresh never came"
        spark2 = connect(gw.url(other))
        assert spark2.range(4).count() == 4
        assert jwks.hits >= 3
    finally:
        jwks.close()


def test_jwks_urls_refuse_plaintext_and_redirects(spark, material, make_gateway):
    """A plaintext JWKS URL without the opt-in is a config error; a redirect is not followed, so keys served
    at its target are never trusted."""
    config = material.base_config(spark.endpoint)
    config["auth"]["jwks_urls"] = ["http://127.0.0.1:9/jwks.json"]
    path = os.path.join(material.dir, "plain-jwks.yaml")
    with open(path, "w") as f:
        json.dump(config, f)
    check = harness.run_cli("config", "check", "--config", path, check=False)
    assert check.returncode != 0 and "auth.jwks_urls[0]" in check.stderr and "allow_plaintext" in check.stderr

    target = harness.JWKSServer()
    target.document = jwk_set(material, "suite-es256")
    redirector = harness.JWKSServer(redirect_to=target.url)
    try:
        config = material.base_config(spark.endpoint)
        config["auth"]["keys"] = []
        config["auth"]["jwks_urls"] = [{"url": redirector.url, "allow_plaintext": True}]
        gw = make_gateway(config, name="jwks-redirect")
        with pytest.raises(grpc.RpcError) as info:
            harness.grpc_call(gw, "Config", harness.config_get_request(str(uuid.uuid4()), "x"), token=material.token())
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert redirector.hits >= 1 and target.hits == 0
        assert "redirects are not followed" in open(gw.log).read()
    finally:
        redirector.close()
        target.close()


def signed_token(material, key_name, kid, **claims):
    """An ES256 token signed with the key file `key_name`, built with the `cryptography` package."""
    from cryptography.hazmat.primitives import serialization, hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    import base64
    key = serialization.load_pem_private_key(open(os.path.join(material.keys, f"{key_name}.key.pem"), "rb").read(), None)
    now = int(time.time())
    body = {"iss": "sparkgate-suite", "aud": "spark-connect", "sub": "alice", "team": "analytics", "iat": now, "exp": now + 600, **claims}
    b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
    header = b64(json.dumps({"alg": "ES256", "kid": kid, "typ": "JWT"}).encode())
    payload = b64(json.dumps(body).encode())
    der = key.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    return f"{header}.{payload}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def other_key_config(material):
    path = os.path.join(material.dir, "other-issuer.yaml")
    if not os.path.exists(path):
        config = material.base_config("127.0.0.1:1")
        config["auth"]["keys"] = [{"kid": "other-es256", "algorithm": "ES256",
                                   "public_key": os.path.join(material.keys, "other-es256.pub.pem"),
                                   "private_key": os.path.join(material.keys, "other-es256.key.pem")}]
        with open(path, "w") as f:
            json.dump(config, f)
    return path


def jwk_set(material, kid):
    """The public JWKS of one key, as `sparkgate jwks` prints it."""
    config = material.base_config("127.0.0.1:1")
    config["auth"]["keys"] = [{"kid": kid, "algorithm": "ES256", "public_key": os.path.join(material.keys, f"{kid}.pub.pem")}]
    path = os.path.join(material.dir, f"jwks-{kid}.yaml")
    with open(path, "w") as f:
        json.dump(config, f)
    return harness.run_cli("jwks", "--config", path).stdout.encode()
