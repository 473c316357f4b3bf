"""The HTTP surface: /metrics formats, /probe (multi-target), /healthz, /readyz and the / page."""

from __future__ import annotations

import logging

import httpx
import pytest

from cachewatch.collectors.health import Health

from support import Metrics, free_port, settings, wait_until

UP = "cachewatch_collector_up"


def test_metrics_is_served_at_exactly_metrics_in_text_format(redis_plain, exporter_factory):
    exporter = exporter_factory(settings([redis_plain.url]))
    response = httpx.get(exporter.url + "/metrics", follow_redirects=False)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "cachewatch_build_info{" in response.text
    assert "process_resident_memory_bytes" in response.text
    assert httpx.get(exporter.url + "/metrics/", follow_redirects=False).status_code == 404


def test_openmetrics_when_the_accept_header_asks(redis_plain, exporter_factory):
    exporter = exporter_factory(settings([redis_plain.url]))
    response = exporter.get("/metrics", headers={
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "# TYPE cachewatch_cache_lookups counter" in response.text
    assert "# TYPE cachewatch_redis info" in response.text


def test_gzip_when_asked_and_large(redis_factory, exporter_factory):
    servers = [redis_factory() for _ in range(3)]
    exporter = exporter_factory(settings([s.url for s in servers]))
    response = exporter.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert response.headers.get("content-encoding") == "gzip"
    assert Metrics(response.text).label_values(UP, "target") == {s.address for s in servers}


def test_probe_reads_only_the_named_target(redis_factory, exporter_factory):
    one, two = redis_factory(), redis_factory()
    two.client().get("x")
    exporter = exporter_factory(settings([f"one={one.url}", f"two={two.url}"]))
    metrics = exporter.scrape("/probe?target=two")
    assert metrics.label_values(UP, "target") == {"two"}
    assert metrics.value("cachewatch_cache_lookups_total", cache="two", result="miss") == 1
    assert not metrics.find("cachewatch_build_info")
    # by address, a configured target keeps its name
    by_address = exporter.scrape(f"/probe?target=redis://{two.address}")
    assert by_address.label_values(UP, "target") == {"two"}


def test_probe_of_an_allowed_address_works_and_is_not_remembered(redis_plain, exporter_factory):
    exporter = exporter_factory(settings([], **{"probe.allow": ["127.0.0.0/8"]}))
    metrics = exporter.scrape(f"/probe?target={redis_plain.address}")
    assert metrics.value(UP, collector="redis", target=redis_plain.address) == 1
    assert redis_plain.address not in exporter.get("/").text


@pytest.mark.parametrize(("target", "message"), [
    ("nosuchname", "unknown target 'nosuchname'"),
    ("http://127.0.0.1:6379", "use redis://, rediss:// (TLS) or unix://"),
    ("redis://127.0.0.1:notaport", "is not a valid address"),
    ("redis://:6379", "has no host"),
    ("redis://127.0.0.1:6379/abc", "must be a database number"),
    ("", "the target is empty"),
])
def test_probe_rejects_unknown_and_malformed_targets(exporter_factory, target, message):
    exporter = exporter_factory(settings([]))
    response = exporter.get("/probe", params={"target": target})
    assert response.status_code == 400
    assert message in response.text


def test_probe_refuses_credentials_in_the_query_and_logs_none(exporter_factory, caplog):
    caplog.set_level(logging.DEBUG)
    exporter = exporter_factory(settings([]))
    response = exporter.get("/probe", params={"target": "redis://user:hunter2pw@127.0.0.1:1"})
    assert response.status_code == 400
    assert "secrets_file" in response.text
    assert "hunter2pw" not in response.text
    server_side = [r.getMessage() + str(vars(r)) for r in caplog.records
                   if r.name.startswith(("cachewatch", "uvicorn"))]  # not the test's own client
    assert server_side  # the exporter did log (start-up), so the check below means something
    assert not [line for line in server_side if "hunter2pw" in line]


def test_probe_without_target_or_with_unknown_module(exporter_factory):
    exporter = exporter_factory(settings([]))
    missing = exporter.get("/probe")
    assert missing.status_code == 400
    assert "missing target: /probe?target=" in missing.text
    response = exporter.get("/probe", params={"target": "x:1", "module": "nosuchsource"})
    assert response.status_code == 400
    assert "unknown module 'nosuchsource'" in response.text


def test_probe_reads_only_configured_targets_by_default(exporter_factory):
    exporter = exporter_factory(settings([]))
    response = exporter.get("/probe", params={"target": "redis://127.0.0.1:6379"})
    assert response.status_code == 400
    assert "'127.0.0.1:6379' is not a configured target and probe.allow does not list its " \
        "host (probe.allow: empty)" in response.text


def test_probe_targets_are_capped_in_the_error_counters(exporter_factory):
    exporter = exporter_factory(settings([], **{"probe.allow": ["127.0.0.1"]}),
                                health=Health(target_cap=5))
    dead = [f"127.0.0.1:{free_port()}" for _ in range(12)]
    for address in dead:
        exporter.get("/probe", params={"target": address})
    metrics = exporter.scrape(f"/probe?target={dead[0]}")
    assert metrics.value(UP, collector="redis", target=dead[0]) == 0
    # 12 distinct addresses failed; the counters kept 5 of them and folded the rest into other
    health = exporter.health
    targets = {t for t, _, _ in health.errors("redis")}
    assert len(targets) == 6
    assert "other" in targets
    other = sum(c for t, r, c in health.errors("redis") if t == "other")
    assert other == 7


def test_healthz_readyz_and_the_status_page(redis_plain, exporter_factory):
    exporter = exporter_factory(settings([f"main={redis_plain.url}",
                                          f"gone=redis://127.0.0.1:{free_port()}"]))
    assert exporter.get("/healthz").text == "ok\n"
    wait_until(lambda: exporter.get("/readyz").status_code == 200)
    page = exporter.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert "main" in page.text
    assert "gone" in page.text
    assert "down (connection)" in page.text
    assert 'href="metrics"' in page.text
    assert 'href="probe?target=main"' in page.text


def test_disabled_redis_collector_serves_self_metrics_only(exporter_factory, redis_plain):
    exporter = exporter_factory(settings([redis_plain.url], **{"redis.enabled": False}))
    metrics = exporter.scrape()
    assert metrics.find("cachewatch_build_info")
    assert not metrics.find(UP)
    # the state store's counts were read at start-up: nothing else to wait for
    assert exporter.get("/readyz").json() == {"ready": True, "collectors": {"state": True}}
    response = exporter.get("/probe", params={"target": redis_plain.url})
    assert response.status_code == 400
    assert "unknown module 'redis'" in response.text


def test_a_flood_of_probes_to_a_hung_address_does_not_slow_metrics(redis_plain,
                                                                   exporter_factory):
    """Probes of an address that accepts and never answers, while /metrics is scraped."""
    import socket
    import threading
    import time

    # The probes hang for their whole 5 s deadline; /metrics queued behind them would take as
    # long. The bound below is half of that, wide enough for a loaded machine: no timing test.
    exporter = exporter_factory(settings([redis_plain.url], **{"redis.timeout": 5.0,
                                                               "probe.allow": ["127.0.0.1"]}))
    with socket.socket() as hung:  # accepts connections (backlog), never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        host, port = hung.getsockname()
        address = f"{host}:{port}"
        statuses: list[int] = []
        client = httpx.Client(timeout=30)  # one client: 32 of them would load 32 CA bundles
        threads = [threading.Thread(target=lambda: statuses.append(client.get(
            exporter.url + "/probe", params={"target": address}).status_code))
            for _ in range(32)]
        for thread in threads:
            thread.start()
        time.sleep(0.2)
        started = time.monotonic()
        metrics = exporter.scrape()
        elapsed = time.monotonic() - started
        for thread in threads:
            thread.join()
        client.close()
    assert metrics.value(UP, collector="redis", target=redis_plain.address) == 1
    assert elapsed < 2.5, elapsed  # not queued behind the probes' 5 s deadlines
    assert statuses.count(200) >= 16  # up to the cap, each reporting up 0
    assert set(statuses) <= {200, 503}


def test_probe_refuses_unlisted_unix_sockets(exporter_factory):
    exporter = exporter_factory(settings([], **{"probe.allow": ["*"]}))
    response = exporter.get("/probe", params={"target": "unix:///etc/passwd"})
    assert response.status_code == 400
    assert "only as configured targets" in response.text


def test_probe_does_not_make_readyz_ready(redis_plain, exporter_factory):
    redis_plain.pause()  # the configured target hangs: the first round takes the full timeout
    try:
        exporter = exporter_factory(settings([redis_plain.url], **{
            "redis.timeout": 2.0, "probe.allow": ["127.0.0.1"]}))
        assert exporter.get("/readyz").status_code == 503
        exporter.get("/probe", params={"target": "127.0.0.1:1"})
        assert exporter.get("/readyz").json() == {
            "ready": False, "collectors": {"redis": False, "state": True}}
        wait_until(lambda: exporter.get("/readyz").status_code == 200, timeout=10)
    finally:
        redis_plain.resume()


def test_status_page_probe_links_are_url_encoded(redis_plain, exporter_factory):
    exporter = exporter_factory(settings([f"a&b#c={redis_plain.url}"]))
    wait_until(lambda: exporter.get("/readyz").status_code == 200)
    assert 'href="probe?target=a%26b%23c"' in exporter.get("/").text
