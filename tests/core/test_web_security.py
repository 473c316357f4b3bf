"""TLS and basic auth for the exporter's own endpoints, from a web config file in the Prometheus
exporter-toolkit format, with real certificates (trustme) and real TLS handshakes."""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from pathlib import Path

import bcrypt
import httpx
import pytest
import trustme
import yaml

from cachewatch.http import guard, serving
from cachewatch.http.webconfig import WebConfigError, load

from support import Metrics, settings, wait_until

PASSWORD = "correct-Horse-7"
# Cost 4: the lowest bcrypt allows, so the tests spend no time hashing. The toolkit's own
# example file uses the $2y$ prefix (htpasswd's); both prefixes must work.
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$", 1)
REFUSED = "cachewatch_http_refused_total"


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, client certificates from it and another CA."""
    ca, stranger = trustme.CA(), trustme.CA()
    files = {name: tmp_path / f"{name}.pem" for name in (
        "ca", "cert", "key", "client", "client_key", "other_client", "other_client_key",
        "stranger", "stranger_key")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    for name, issuer, san in (("client", ca, "scraper.example"),
                              ("other_client", ca, "intruder.example"),
                              ("stranger", stranger, "scraper.example")):
        cert = issuer.issue_cert(san)
        cert.cert_chain_pems[0].write_to_path(str(files[name]))
        cert.private_key_pem.write_to_path(str(files[f"{name}_key"]))
    return files


def write_web_config(folder: Path, content: dict) -> Path:
    path = folder / "web-config.yml"
    path.write_text(yaml.safe_dump(content))
    return path


def client(pki: dict[str, Path], cert: str | None = None) -> ssl.SSLContext:
    """A client context trusting the test CA, presenting ``cert`` if given."""
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if cert:
        context.load_cert_chain(str(pki[cert]), str(pki[f"{cert}_key"]))
    return context


def tls_auth_exporter(exporter_factory, pki, tmp_path, **extra):
    config = {"tls_server_config": {"cert_file": pki["cert"].name, "key_file": pki["key"].name},
              "basic_auth_users": {"alice": HASH}, **extra}
    path = write_web_config(pki["ca"].parent, config)
    return exporter_factory(settings([], **{"web.config_file": str(path)}))


def test_the_exporter_toolkit_example_file_loads(tmp_path, pki):
    """The shape of the toolkit's documented file: relative paths, versions, ciphers, headers,
    users with $2y$ hashes, a rate limit."""
    path = write_web_config(tmp_path, {
        "tls_server_config": {
            "cert_file": "cert.pem", "key_file": "key.pem", "min_version": "TLS12",
            "max_version": "TLS13", "prefer_server_cipher_suites": True,
            "cipher_suites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]},
        "http_server_config": {"http2": True, "headers": {
            "X-Frame-Options": "deny", "Strict-Transport-Security": "max-age=31536000"}},
        "basic_auth_users": {"alice": HASH, "bob": HASH},
        "rate_limit": {"interval": "100ms", "burst": 20},
        "auth_excluded_paths": ["/healthz"],
    })
    config = load(path)
    assert config.tls is not None
    assert config.tls.cert_file == pki["cert"]  # relative to the web config file's folder
    assert set(config.users) == {"alice", "bob"}
    assert (b"x-frame-options", b"deny") in config.headers
    assert (config.rate_interval, config.rate_burst) == (0.1, 20)
    assert config.excluded_paths == {"/healthz"}
    assert config.context().minimum_version == ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(("content", "message"), [
    ({"tls_server_config": {"cert_file": "cert.pem", "key_file": "key.pem", "typo": 1}},
     "tls_server_config.typo: unknown setting"),
    ({"basic_auth_users": {"alice": "plaintext-password"}},
     "the password of user 'alice' is not a bcrypt hash"),
    ({"tls_server_config": {"cert_file": "cert.pem", "key_file": "key.pem",
                            "client_auth_type": "RequireAnyClientCert",
                            "client_ca_file": "ca.pem"}},
     "RequireAnyClientCert is not supported"),
    ({"tls_server_config": {"cert_file": "cert.pem", "key_file": "key.pem",
                            "client_ca_file": "ca.pem"}},
     "client CAs have been configured without a client_auth_type"),
    ({"tls_server_config": {"cert_file": "cert.pem", "key_file": "key.pem",
                            "client_auth_type": "RequireAndVerifyClientCert"}},
     "needs client_ca_file"),
    ({"tls_server_config": {"cert_file": "cert.pem"}}, "missing one of key or key_file"),
    ({"tls_server_config": {"cert_file": "nope.pem", "key_file": "key.pem"}},
     "No such file"),
    ({"tls_server_config": {"cert_file": "cert.pem", "key_file": "key.pem",
                            "cipher_suites": ["TLS_RSA_WITH_RC4_128_SHA"]}},
     "unknown cipher suite"),
    ({"http_server_config": {"headers": {"X-Frame-Options": "allow-all"}}},
     "invalid value for X-Frame-Options"),
    ({"http_server_config": {"headers": {"Server": "x"}}}, "can not be configured"),
    ({"rate_limit": {"interval": "1s", "burst": 0}}, "burst must be at least 1"),
])
def test_a_bad_web_config_stops_start_up_with_the_reason(tmp_path, pki, content, message):
    for name in ("cert", "key", "ca"):
        (tmp_path / f"{name}.pem").write_bytes(pki[name].read_bytes())
    with pytest.raises(WebConfigError) as caught:
        load(write_web_config(tmp_path, content))
    assert message in str(caught.value)
    assert "web.config_file" in str(caught.value)


def test_a_yaml_error_does_not_quote_the_file(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: {HASH}: [\n")
    with pytest.raises(WebConfigError) as caught:
        load(path)
    assert "at line 2" in str(caught.value)
    assert HASH not in str(caught.value)


def test_basic_auth_over_tls_guards_every_endpoint(exporter_factory, pki, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cachewatch")
    exporter = tls_auth_exporter(exporter_factory, pki, tmp_path, http_server_config={
        "headers": {"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff"}})
    assert exporter.url.startswith("https://")
    verify = client(pki)
    good = exporter.get("/metrics", verify=verify, auth=("alice", PASSWORD))
    assert good.status_code == 200
    assert good.headers["x-frame-options"] == "deny"
    assert good.headers["x-content-type-options"] == "nosniff"
    for path in ("/metrics", "/probe?target=x", "/", "/healthz", "/readyz", "/docs",
                 "/openapi.json", "/webhooks/registry", "/api/v1/caches"):
        refused = exporter.get(path, verify=verify)
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"].startswith("Basic")
        assert refused.headers["x-frame-options"] == "deny"  # on refusals too
    for auth in (("alice", "wrong"), ("mallory", PASSWORD), ("alice", "x" * 100)):
        assert exporter.get("/metrics", verify=verify, auth=auth).status_code == 401
    lowercase = "basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert exporter.get("/metrics", verify=verify,
                        headers={"Authorization": lowercase}).status_code == 200
    with pytest.raises(httpx.TransportError):  # plain HTTP to the TLS port
        httpx.get(exporter.url.replace("https", "http") + "/metrics", timeout=5)
    metrics = Metrics(exporter.get("/metrics", verify=verify, auth=("alice", PASSWORD)).text)
    assert metrics.value(REFUSED, reason="unauthorized") == 12
    logged = [r for r in caplog.records if getattr(r, "cause", None) == "unauthorized"]
    assert len(logged) == 1  # once per cause and minute, not once per request


def test_excluded_paths_and_receivers_with_their_own_token(exporter_factory, pki, tmp_path):
    path = write_web_config(tmp_path, {
        "tls_server_config": {"cert_file": str(pki["cert"]), "key_file": str(pki["key"])},
        "basic_auth_users": {"alice": HASH}, "auth_excluded_paths": ["/healthz"]})
    exporter = exporter_factory(settings([], **{
        "web.config_file": str(path), "builds.token": "build-Token-1",
        "registry.token": "registry-Token-1"}))
    verify = client(pki)
    assert exporter.get("/healthz", verify=verify).text == "ok\n"
    assert exporter.get("/readyz", verify=verify).status_code == 401
    # A receiver with a token is guarded by it: the sender has one Authorization header.
    build = httpx.post(exporter.url + "/api/v1/builds", verify=verify, content=b"{}",
                       headers={"Authorization": "Bearer build-Token-1"})
    assert build.status_code == 400  # past both guards, to the body check
    wrong = httpx.post(exporter.url + "/api/v1/builds", verify=verify, content=b"{}",
                       headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    hook = httpx.post(exporter.url + "/webhooks/registry", verify=verify, json={"events": []},
                      headers={"Authorization": "bearer registry-Token-1"})
    assert hook.status_code == 200
    # A receiver without a token of its own needs basic auth like everything else.
    push = {"instance": "i1", "caches": []}
    assert httpx.post(exporter.url + "/api/v1/caches", verify=verify,
                      json=push).status_code == 401
    assert httpx.post(exporter.url + "/api/v1/caches", verify=verify, json=push,
                      auth=("alice", PASSWORD)).status_code != 401


def test_client_certificates_when_required(exporter_factory, pki, tmp_path):
    path = write_web_config(tmp_path, {"tls_server_config": {
        "cert_file": str(pki["cert"]), "key_file": str(pki["key"]),
        "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": str(pki["ca"]),
        "client_allowed_sans": ["scraper.example"]}})
    exporter = exporter_factory(settings([], **{"web.config_file": str(path)}))
    assert exporter.get("/metrics", verify=client(pki, "client")).status_code == 200
    for refused in (None, "stranger", "other_client"):  # none, unknown CA, SAN not allowed
        with pytest.raises(httpx.TransportError):
            exporter.get("/metrics", verify=client(pki, refused))


def test_bcrypt_runs_once_per_credentials_and_bad_guesses_cannot_evict_good_ones(monkeypatch):
    calls: list[bytes] = []
    real = guard._checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(guard, "_checkpw", counting)
    auth = guard.BasicAuth(cache_size=4)
    users = {"alice": HASH.encode()}

    def header(password: str) -> bytes:
        return b"Basic " + base64.b64encode(f"alice:{password}".encode())

    async def scenario() -> list[bool | None]:
        verdicts = [await auth.verify(users, header(PASSWORD)) for _ in range(5)]
        verdicts += [await auth.verify(users, header(f"guess-{n}")) for n in range(10)]
        verdicts.append(await auth.verify(users, header(PASSWORD)))
        verdicts.append(await auth.verify(users, b"Bearer whatever"))
        return verdicts

    verdicts = asyncio.run(scenario())
    auth.close()
    assert verdicts == [True] * 5 + [False] * 10 + [True, False]
    assert calls.count(PASSWORD.encode()) == 1  # cached, and not evicted by the guesses
    assert len(calls) == 11


@pytest.mark.e2e  # waits on the reload interval: in `make test`, out of the fast loop
def test_the_web_config_is_reloaded_when_it_changes(exporter_factory, pki, tmp_path,
                                                    monkeypatch):
    monkeypatch.setattr(serving, "RELOAD_INTERVAL", 0.1)
    exporter = tls_auth_exporter(exporter_factory, pki, tmp_path)
    verify = client(pki)
    path = exporter.settings.web.config_file
    other = bcrypt.hashpw(b"bobs-Password", bcrypt.gensalt(4)).decode()
    content = yaml.safe_load(path.read_text())
    content["basic_auth_users"] = {"bob": other}
    path.write_text(yaml.safe_dump(content))
    wait_until(lambda: exporter.get("/metrics", verify=verify,
                                    auth=("bob", "bobs-Password")).status_code == 200)
    assert exporter.get("/metrics", verify=verify, auth=("alice", PASSWORD)).status_code == 401
    # A broken file is reported and the running configuration stays.
    path.write_text("basic_auth_users: [\n")
    assert not serving.reload(exporter.web, exporter.server.config.context)
    assert exporter.get("/metrics", verify=verify,
                        auth=("bob", "bobs-Password")).status_code == 200


def test_a_rotated_certificate_is_served_without_a_restart(exporter_factory, pki, tmp_path):
    exporter = tls_auth_exporter(exporter_factory, pki, tmp_path)
    new_ca = trustme.CA()
    rotated = new_ca.issue_cert("127.0.0.1")
    rotated.cert_chain_pems[0].write_to_path(str(pki["cert"]))
    rotated.private_key_pem.write_to_path(str(pki["key"]))
    assert serving.reload(exporter.web, exporter.server.config.context)
    trusting_new = ssl.create_default_context(cadata=new_ca.cert_pem.bytes().decode())
    assert exporter.get("/metrics", verify=trusting_new,
                        auth=("alice", PASSWORD)).status_code == 200
    with pytest.raises(httpx.ConnectError):
        exporter.get("/metrics", verify=client(pki), auth=("alice", PASSWORD))


def test_rate_limit_answers_429(exporter_factory, tmp_path):
    path = write_web_config(tmp_path, {"rate_limit": {"interval": "10s", "burst": 3}})
    exporter = exporter_factory(settings([], **{"web.config_file": str(path)}))
    statuses = [exporter.get("/healthz").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


@pytest.mark.e2e
def test_real_prometheus_scrapes_over_tls_with_basic_auth(exporter_factory, prometheus_factory,
                                                          pki, tmp_path):
    path = write_web_config(tmp_path, {
        "tls_server_config": {"cert_file": str(pki["cert"]), "key_file": str(pki["key"]),
                              "client_auth_type": "RequireAndVerifyClientCert",
                              "client_ca_file": str(pki["ca"])},
        "basic_auth_users": {"prometheus": HASH}})
    exporter = exporter_factory(settings([], **{"web.config_file": str(path)}))
    tls = {"ca_file": str(pki["ca"]), "cert_file": str(pki["client"]),
           "key_file": str(pki["client_key"])}
    good = prometheus_factory([f"127.0.0.1:{exporter.port}"], scrape={
        "scheme": "https", "tls_config": tls,
        "basic_auth": {"username": "prometheus", "password": PASSWORD}})
    bad = prometheus_factory([f"127.0.0.1:{exporter.port}"], scrape={
        "scheme": "https", "tls_config": tls,
        "basic_auth": {"username": "prometheus", "password": "wrong"}})
    wait_until(lambda: good.scalar('up{job="cachewatch"}') == 1, timeout=30)
    wait_until(lambda: good.scalar("cachewatch_build_info") == 1, timeout=30)
    wait_until(lambda: bad.scalar('up{job="cachewatch"}') == 0, timeout=30)
    assert "401" in bad.target_error()


@pytest.mark.e2e
def test_cachewatch_serve_takes_the_web_config_flag(pki, tmp_path):
    """The real command with --web.config.file: HTTPS, basic auth, /healthz left open for
    probes; a broken file stops start-up with exit code 2 and no secret in the message."""
    import os
    import subprocess
    import sys

    from support import free_port

    path = write_web_config(tmp_path, {
        "tls_server_config": {"cert_file": str(pki["cert"]), "key_file": str(pki["key"])},
        "basic_auth_users": {"alice": HASH}, "auth_excluded_paths": ["/healthz"]})
    port = free_port()
    command = [sys.executable, "-m", "cachewatch", "serve", "--listen-address", "127.0.0.1",
               "--port", str(port), "--disable-collector", "redis"]
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([*command, "--web.config.file", str(path)], stdout=log,
                            stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        url = f"https://127.0.0.1:{port}"
        verify = client(pki)
        wait_until(lambda: httpx.get(url + "/healthz", verify=verify).status_code == 200,
                   timeout=20)
        assert httpx.get(url + "/metrics", verify=verify).status_code == 401
        assert httpx.get(url + "/metrics", verify=verify,
                         auth=("alice", PASSWORD)).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert f"listen=https://127.0.0.1:{port}" in (tmp_path / "serve.log").read_text()
    path.write_text(yaml.safe_dump({"basic_auth_users": {"alice": "hunter2-Plain"}}))
    failed = subprocess.run([*command, "--web.config.file", str(path)], capture_output=True,
                            text=True, timeout=30)
    assert failed.returncode == 2
    assert "the password of user 'alice' is not a bcrypt hash" in failed.stderr
    assert "hunter2-Plain" not in failed.stderr + failed.stdout


def test_the_docs_web_config_example_loads(tmp_path, pki):
    """The Security page's file, with certificates of our own under its names."""
    from support import ROOT

    page = (ROOT / "docs" / "security.md").read_text()
    start = page.index("# web-config.yml\n")
    example = page[start:page.index("```", start)]
    for ours, theirs in (("cert", "server.crt"), ("key", "server.key"),
                         ("ca", "scrapers-ca.crt")):
        (tmp_path / theirs).write_bytes(pki[ours].read_bytes())
    config = load(write_web_config(tmp_path, yaml.safe_load(example)))
    assert config.tls is not None
    assert config.tls.client_allowed_sans == ["prometheus.monitoring.svc"]
    assert bcrypt.checkpw(b"change-me", config.users["prometheus"])
    assert config.excluded_paths == {"/healthz"}


@pytest.mark.e2e  # waits on a real timeout: in `make test`, out of the fast loop
def test_a_silent_client_on_the_tls_port_is_dropped_at_the_header_timeout(exporter_factory,
                                                                          pki, tmp_path):
    """A TCP connection that never starts its TLS handshake holds nothing for long."""
    import contextlib
    import socket
    import time

    path = write_web_config(tmp_path, {"tls_server_config": {
        "cert_file": str(pki["cert"]), "key_file": str(pki["key"])}})
    exporter = exporter_factory(settings([], **{"web.config_file": str(path),
                                                "web.header_timeout": 0.5}))
    with socket.create_connection(("127.0.0.1", exporter.port), timeout=5) as sock:
        started = time.monotonic()
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError):  # a reset is a close too
            assert sock.recv(100) == b""
        assert time.monotonic() - started < 2.5  # asyncio's own default would be 60 s
