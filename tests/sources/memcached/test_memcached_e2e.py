"""The Memcached source against a real memcached (Debian's package), through the real exporter."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support import ROOT, Metrics, settings, wait_until

pytestmark = pytest.mark.e2e  # a real memcached per test

LOOKUPS = "cachewatch_cache_lookups_total"
LATENCY_COUNT = "cachewatch_cache_latency_seconds_count"


def _settings(*targets: str, **overrides: object):
    return settings([], **{"redis.enabled": False, "memcached.enabled": True,
                           "memcached.targets": list(targets), "memcached.probe_interval": 0,
                           "memcached.timeout": 1.0, **overrides})


def _lookups(metrics: Metrics, cache: str) -> tuple[float, float]:
    return (metrics.value(LOOKUPS, layer="memcached", cache=cache, result="hit"),
            metrics.value(LOOKUPS, layer="memcached", cache=cache, result="miss"))


def test_hits_and_misses_move_by_exactly_the_gets_made(memcached, exporter_factory):
    exporter = exporter_factory(_settings(f"main={memcached.address}"))
    before = _lookups(exporter.scrape(), "main")
    memcached.set("a")
    memcached.set("b")
    memcached.get("a", "b", "a", "nope", "gone")  # 3 hits, 2 misses
    after = exporter.scrape()
    assert _lookups(after, "main") == (before[0] + 3, before[1] + 2)
    # scraping read nothing: a second scrape sees the same counts
    assert _lookups(exporter.scrape(), "main") == _lookups(after, "main")
    assert after.value("cachewatch_collector_up", collector="memcached", target="main") == 1
    assert after.value("cachewatch_cache_entries", layer="memcached", cache="main") == 2
    assert after.value("cachewatch_memcached_limit_bytes", cache="main") == 64 << 20
    assert after.value("cachewatch_memcached_items_stored_total", cache="main") == 2
    assert after.value("cachewatch_memcached_info", cache="main",
                       version=memcached.stats()["version"]) == 1


def test_the_probe_times_round_trips_without_moving_get_counters(memcached, exporter_factory):
    exporter = exporter_factory(_settings(f"main={memcached.address}",
                                          **{"memcached.probe_interval": 0.02}))
    first = exporter.scrape()
    count = first.value(LATENCY_COUNT, layer="memcached", cache="main", op="version")
    wait_until(lambda: exporter.scrape().value(
        LATENCY_COUNT, layer="memcached", cache="main", op="version") >= count + 10)
    stats = memcached.stats()
    assert (stats["get_hits"], stats["get_misses"], stats["cmd_get"]) == ("0", "0", "0")
    later = exporter.scrape()
    assert _lookups(later, "main") == (0, 0)
    # the 50 ms edge the P99 alert is drawn at is a bucket of the histogram
    assert later.find("cachewatch_cache_latency_seconds_bucket", layer="memcached",
                      cache="main", le="0.05")


def test_a_stopped_memcached_is_up_0_and_metrics_still_answers(memcached_factory,
                                                               exporter_factory):
    alive, stopped = memcached_factory(), memcached_factory()
    exporter = exporter_factory(_settings(f"alive={alive.address}",
                                          f"stopped={stopped.address}"))
    assert exporter.scrape().value("cachewatch_collector_up", collector="memcached",
                                   target="stopped") == 1
    stopped.stop()
    metrics = exporter.scrape()
    assert metrics.value("cachewatch_collector_up", collector="memcached",
                         target="stopped") == 0
    assert metrics.value("cachewatch_collector_errors_total", collector="memcached",
                         target="stopped", reason="connection") == 1
    assert metrics.find(LOOKUPS, cache="stopped") == []
    assert metrics.value("cachewatch_collector_up", collector="memcached", target="alive") == 1


def test_a_hung_memcached_is_a_timeout_at_the_deadline(memcached, exporter_factory):
    import signal

    exporter = exporter_factory(_settings(f"main={memcached.address}",
                                          **{"memcached.timeout": 0.3}))
    exporter.scrape()
    assert memcached.proc is not None
    memcached.proc.send_signal(signal.SIGSTOP)
    try:
        metrics = exporter.scrape()
    finally:
        memcached.proc.send_signal(signal.SIGCONT)
    assert metrics.value("cachewatch_collector_up", collector="memcached", target="main") == 0
    assert metrics.value("cachewatch_collector_errors_total", collector="memcached",
                         target="main", reason="timeout") == 1
    assert metrics.value("cachewatch_collector_duration_seconds", collector="memcached",
                         target="main") < 1.0
    # once it answers again, the next scrape reads it on a fresh connection
    wait_until(lambda: exporter.scrape().value("cachewatch_collector_up",
                                               collector="memcached", target="main") == 1)


def test_probe_reads_one_configured_target_and_allowed_addresses(memcached_factory,
                                                                 exporter_factory):
    main, unlisted = memcached_factory(), memcached_factory()
    exporter = exporter_factory(_settings(f"main={main.address}",
                                          **{"probe.allow": ["127.0.0.1"]}))
    unlisted.set("k")
    unlisted.get("k")

    def probe(target: str):
        return exporter.get("/probe", params={"target": target, "module": "memcached"})

    probed = Metrics(probe("main").text)
    assert probed.label_values("cachewatch_collector_up", "target") == {"main"}
    response = probe(unlisted.address)
    assert response.status_code == 200, response.text
    assert _lookups(Metrics(response.text), unlisted.address) == (1, 0)
    refused = probe("nope")
    assert refused.status_code == 400
    assert "configured: main" in refused.text


def test_status_page_shows_the_memcached_caches(memcached, exporter_factory):
    exporter = exporter_factory(_settings(f"main={memcached.address}"))
    memcached.set("a")
    memcached.get("a")
    exporter.scrape()
    page = exporter.get("/").text
    assert '<tr data-layer="memcached" data-cache="main">' in page
    assert "<h2>Memcached</h2>" in page


def test_serve_with_memcached_off_never_imports_its_collector():
    """Off by default: only the package and its settings load (the settings model is part of
    every configuration); with it on, the collector, client, probe and metric families."""
    code = ("import sys\nfrom cachewatch.config import load_settings\n"
            "from cachewatch.runtime import Runtime\n"
            "from cachewatch.collectors.enabled import build\n"
            "from cachewatch.http.server import create_app\n"
            "runtime = Runtime()\n"
            "create_app(build(load_settings(**{'state.url': 'memory://', "
            "'memcached.enabled': %s}), runtime), runtime)\n"
            "print(' '.join(m for m in sys.modules if 'memcache' in m))")
    env = {"PYTHONPATH": str(ROOT / "exporter")}

    def loaded(enabled: bool) -> set[str]:
        return set(subprocess.run([sys.executable, "-c", code % enabled], capture_output=True,
                                  text=True, check=True, env=env, timeout=60).stdout.split())

    package = "cachewatch.sources.memcached"
    assert loaded(False) == {package, f"{package}.settings"}
    assert {f"{package}.collector", f"{package}.client", f"{package}.probe",
            f"{package}.contract"} <= loaded(True)
