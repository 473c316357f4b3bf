"""Targets down, hung, locked or misconfigured: reported, counted, never a stalled scrape."""

from __future__ import annotations

import logging
import time

import pytest

from cachewatch.config import load_settings

from support import settings, wait_until

pytestmark = pytest.mark.e2e  # every test here drives real services

UP = "cachewatch_collector_up"
ERRORS = "cachewatch_collector_errors_total"
TIMEOUT = 1.0


def test_killed_redis_reports_down_then_recovers_on_restart(redis_plain, exporter_factory):
    exporter = exporter_factory(settings([redis_plain.url], **{"redis.timeout": TIMEOUT}))
    target = redis_plain.address
    assert exporter.scrape().value(UP, collector="redis", target=target) == 1

    redis_plain.stop()
    started = time.monotonic()
    down = exporter.scrape()
    assert time.monotonic() - started < TIMEOUT + 1
    assert down.value(UP, collector="redis", target=target) == 0
    assert down.value(ERRORS, collector="redis", target=target, reason="connection") >= 1
    assert not down.find("cachewatch_cache_lookups_total", cache=target)  # no stale values
    assert down.value("cachewatch_build_info", version=down.label_values(
        "cachewatch_build_info", "version").pop(), python_version=down.label_values(
        "cachewatch_build_info", "python_version").pop()) == 1

    redis_plain.start()  # same port
    wait_until(lambda: exporter.scrape().value(UP, collector="redis", target=target) == 1)
    assert exporter.scrape().find("cachewatch_cache_lookups_total", cache=target, result="hit")


def test_hung_redis_times_out_without_stalling_the_other_target(redis_factory, exporter_factory):
    healthy, hung = redis_factory(), redis_factory()
    exporter = exporter_factory(settings([f"ok={healthy.url}", f"hung={hung.url}"],
                                         **{"redis.timeout": TIMEOUT}))
    exporter.scrape()
    hung.pause()  # accepts connections, never answers: a real hung server
    try:
        for _ in range(3):  # repeated scrapes must not pile up behind the hung read
            started = time.monotonic()
            metrics = exporter.scrape()
            elapsed = time.monotonic() - started
            assert elapsed < TIMEOUT + 0.75, elapsed
            assert metrics.value(UP, collector="redis", target="hung") == 0
            assert metrics.value(UP, collector="redis", target="ok") == 1
            assert metrics.find("cachewatch_cache_lookups_total", cache="ok", result="hit")
        assert metrics.value(ERRORS, collector="redis", target="hung", reason="timeout") >= 3
        assert exporter.get("/healthz").status_code == 200
    finally:
        hung.resume()
    wait_until(lambda: exporter.scrape().value(UP, collector="redis", target="hung") == 1)


def test_healthz_answers_while_a_scrape_waits_on_a_hung_target(redis_plain, exporter_factory):
    import threading

    exporter = exporter_factory(settings([redis_plain.url], **{"redis.timeout": 2.0}))
    exporter.scrape()
    redis_plain.pause()
    try:
        scrape = threading.Thread(target=exporter.scrape)
        scrape.start()
        time.sleep(0.2)  # the scrape is now blocked in a worker thread
        started = time.monotonic()
        assert exporter.get("/healthz").text == "ok\n"
        assert time.monotonic() - started < 0.5  # the event loop was free
        scrape.join()
    finally:
        redis_plain.resume()


def test_wrong_password_is_reason_auth_and_never_leaks(
    redis_auth, exporter_factory, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-Pa55word-xyz"
    exporter = exporter_factory(settings([{"url": redis_auth.url, "name": "locked",
                                           "password": wrong}]))
    metrics = exporter.scrape()
    assert metrics.value(UP, collector="redis", target="locked") == 0
    assert metrics.value(ERRORS, collector="redis", target="locked", reason="auth") >= 1
    page = exporter.get("/").text
    assert "auth" in page
    for text in (metrics.text, page, caplog.text, exporter.get("/readyz").text):
        assert wrong not in text


def test_acl_user_password_file_reads_and_missing_permission_is_named(
    redis_auth, exporter_factory, tmp_path
):
    from conftest import ACL_PASSWORD

    secret = tmp_path / "app.pw"
    secret.write_text(ACL_PASSWORD + "\n")
    exporter = exporter_factory(settings([
        {"url": redis_auth.url, "name": "acl", "username": "app", "password_file": str(secret)},
        {"url": redis_auth.url, "name": "nosy", "username": "nosy", "password": ACL_PASSWORD},
    ]))
    metrics = exporter.scrape()
    assert metrics.value(UP, collector="redis", target="acl") == 1
    # +info +ping does not allow LATENCY HISTOGRAM: that family is left out, the read stands
    assert metrics.find("cachewatch_cache_lookups_total", cache="acl", result="hit") == [0]
    assert not metrics.find("cachewatch_redis_command_latency_seconds_count", cache="acl")
    assert metrics.value(UP, collector="redis", target="nosy") == 0
    assert metrics.value(ERRORS, collector="redis", target="nosy", reason="permission") >= 1
    assert ACL_PASSWORD not in metrics.text


def test_a_rotated_password_file_is_read_again_without_restart(redis_factory, exporter_factory,
                                                               tmp_path):
    server = redis_factory("--requirepass", "first-Pw")
    secret = tmp_path / "pw"
    secret.write_text("first-Pw\n")
    exporter = exporter_factory(settings([{"url": server.url, "name": "r",
                                           "password_file": str(secret)}]))
    assert exporter.scrape().value(UP, collector="redis", target="r") == 1
    server.client(password="first-Pw").execute_command("CONFIG", "SET", "requirepass", "next-Pw")
    server.client(password="next-Pw").execute_command("CLIENT", "KILL", "TYPE", "normal")
    secret.write_text("next-Pw\n")
    assert exporter.scrape().value(UP, collector="redis", target="r") == 1


def test_secrets_file_keyed_by_address_and_by_name(redis_auth, exporter_factory, tmp_path):
    from conftest import ACL_PASSWORD, ADMIN_PASSWORD

    secrets = tmp_path / "secrets.yml"
    secrets.write_text(
        f'"redis://{redis_auth.address}": {ADMIN_PASSWORD}\n'
        f"named: {{username: app, password: {ACL_PASSWORD}}}\n"
    )
    exporter = exporter_factory(settings(
        [redis_auth.url, f"named={redis_auth.url}"], **{"redis.secrets_file": str(secrets)}))
    metrics = exporter.scrape()
    assert metrics.value(UP, collector="redis", target=redis_auth.address) == 1
    assert metrics.value(UP, collector="redis", target="named") == 1
    for text in (metrics.text, exporter.get("/").text):
        assert ADMIN_PASSWORD not in text
        assert ACL_PASSWORD not in text


def test_tls_target_with_ca_and_a_wrong_ca_is_reason_tls(redis_factory, tls_files,
                                                         exporter_factory):
    server = redis_factory(
        "--tls-cert-file", str(tls_files["cert"]), "--tls-key-file", str(tls_files["key"]),
        "--tls-ca-cert-file", str(tls_files["ca"]), "--tls-auth-clients", "no", tls=True)
    exporter = exporter_factory(settings([
        {"url": server.url, "name": "tls", "tls_ca_file": str(tls_files["ca"])},
        {"url": server.url, "name": "wrong-ca", "tls_ca_file": str(tls_files["other_ca"])},
        {"url": f"redis://{server.address}", "name": "plaintext-to-tls"},
    ]))
    metrics = exporter.scrape()
    assert metrics.value(UP, collector="redis", target="tls") == 1
    assert metrics.find("cachewatch_cache_lookups_total", cache="tls", result="miss") == [0]
    assert metrics.value(UP, collector="redis", target="wrong-ca") == 0
    assert metrics.value(ERRORS, collector="redis", target="wrong-ca", reason="tls") >= 1
    assert metrics.value(UP, collector="redis", target="plaintext-to-tls") == 0


def test_readyz_waits_for_the_first_round_even_if_the_target_is_down(exporter_factory):
    from support import free_port

    exporter = exporter_factory(load_settings(**{
        "redis.targets": [f"redis://127.0.0.1:{free_port()}"], "redis.probe_interval": 0,
        "state.url": "memory://"}))
    ready = wait_until(lambda: exporter.get("/readyz").status_code == 200 and exporter.get(
        "/readyz").json())
    assert ready == {"ready": True, "collectors": {"redis": True, "state": True}}
