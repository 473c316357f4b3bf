"""Application caches: the push API against a running exporter (and real Prometheus for PromQL),
the in-process instrumentation, and the two-level example app against a real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import cachetools
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from cachewatch.instrument import Caches, CacheStats, cached, instrument_cachetools

from support import ROOT, Metrics, free_port, wait_until
from support import settings as exporter_settings

LOOKUPS = "cachewatch_cache_lookups_total"
APP = {"layer": "app"}


def app_exporter(exporter_factory, **overrides):
    return exporter_factory(exporter_settings([], **{"redis.enabled": False, **overrides}))


def caffeine(name, hits, misses, **extra):
    return {"name": name, "stats": {"hitCount": hits, "missCount": misses, **extra}}


def push(exporter, instance, *caches_, started_at=None, headers=None):
    body = {"instance": instance, "caches": list(caches_)}
    if started_at is not None:
        body["started_at"] = started_at
    return httpx.post(exporter.url + "/api/v1/caches", json=body, headers=headers or {},
                      timeout=10)


def test_pushed_caffeine_and_micrometer_counters_appear_exactly(exporter_factory):
    exporter = app_exporter(exporter_factory)
    response = push(exporter, "web-1",
                    caffeine("users", 90, 10, loadSuccessCount=9, loadFailureCount=1,
                             totalLoadTime=2_500_000_000, evictionCount=4, evictionWeight=7),
                    {"name": "pages", "micrometer": {"cache_gets": {"hit": 5, "miss": 3},
                                                     "cache_puts": 3, "cache_evictions": 1,
                                                     "cache_size": 2}})
    assert response.status_code == 202
    assert response.json() == {"accepted": 2, "instance": "web-1"}
    m = exporter.scrape()
    assert m.value(LOOKUPS, cache="users", result="hit", **APP) == 90
    assert m.value(LOOKUPS, cache="users", result="miss", **APP) == 10
    assert m.value("cachewatch_app_cache_loads_total", cache="users", result="success") == 9
    assert m.value("cachewatch_app_cache_loads_total", cache="users", result="failure") == 1
    assert m.value("cachewatch_app_cache_load_seconds_total", cache="users") == 2.5
    assert m.value("cachewatch_cache_evictions_total", cache="users", **APP) == 4
    assert m.value("cachewatch_app_cache_eviction_weight_total", cache="users") == 7
    assert m.value(LOOKUPS, cache="pages", result="hit", **APP) == 5
    assert m.value("cachewatch_app_cache_puts_total", cache="pages") == 3
    assert m.value("cachewatch_cache_entries", cache="pages", **APP) == 2
    assert m.value("cachewatch_app_cache_instances", cache="users") == 1


def test_a_restarted_instance_never_pulls_counters_down(exporter_factory):
    exporter = app_exporter(exporter_factory)
    push(exporter, "a", caffeine("users", 100, 20))
    push(exporter, "b", caffeine("users", 50, 5))
    push(exporter, "a", caffeine("users", 130, 25))  # +30 hits
    push(exporter, "a", caffeine("users", 4, 1))  # restarted: 4 new hits since
    push(exporter, "b", caffeine("users", 60, 5))  # +10, unaffected by a's restart
    m = exporter.scrape()
    assert m.value(LOOKUPS, cache="users", result="hit", **APP) == 130 + 4 + 60
    assert m.value(LOOKUPS, cache="users", result="miss", **APP) == 25 + 1 + 5
    assert m.value("cachewatch_app_cache_resets_total", cache="users") == 1
    assert m.value("cachewatch_app_cache_instances", cache="users") == 2


def test_an_instance_the_store_never_saw_counts_in_full_whatever_its_start(exporter_factory):
    exporter = app_exporter(exporter_factory)
    # Started long before this exporter, but no store holds its counts: nobody exported them.
    an_hour_ago = time.time() - 3600
    push(exporter, "old", caffeine("users", 1000, 100), started_at=an_hour_ago)
    push(exporter, "old", caffeine("users", 1010, 100), started_at=an_hour_ago)
    push(exporter, "new", caffeine("users", 7, 1), started_at=time.time())
    m = exporter.scrape()
    assert m.value(LOOKUPS, cache="users", result="hit", **APP) == 1010 + 7
    assert m.value(LOOKUPS, cache="users", result="miss", **APP) == 100 + 1


def test_a_new_start_time_is_a_restart_even_when_counters_went_up(exporter_factory):
    exporter = app_exporter(exporter_factory)
    first_start = time.time()
    push(exporter, "web-1", caffeine("users", 100, 0), started_at=first_start)
    push(exporter, "web-1", caffeine("users", 150, 0), started_at=first_start + 60)
    m = exporter.scrape()
    assert m.value(LOOKUPS, cache="users", result="hit", **APP) == 250
    assert m.value("cachewatch_app_cache_resets_total", cache="users") == 1


def test_an_instance_back_after_expiry_is_not_counted_twice(exporter_factory):
    exporter = app_exporter(exporter_factory, **{"app.instance_ttl": "1s"})
    started = time.time()
    push(exporter, "web-1", caffeine("users", 1000, 0), started_at=started)
    push(exporter, "web-1", caffeine("users", 1100, 0), started_at=started)
    time.sleep(1.3)
    assert exporter.scrape().value("cachewatch_app_cache_instances", cache="users") == 0
    push(exporter, "web-1", caffeine("users", 1150, 0), started_at=started)
    assert exporter.scrape().value(LOOKUPS, cache="users", result="hit", **APP) == 1150


def test_two_instances_sum_in_promql_and_a_restart_is_no_reset(exporter_factory,
                                                              prometheus_factory):
    exporter = app_exporter(exporter_factory)
    prometheus = prometheus_factory([exporter.url.removeprefix("http://")])
    hits = "cachewatch_cache_lookups_total{layer='app',cache='users',result='hit'}"
    push(exporter, "a", caffeine("users", 40, 0))
    push(exporter, "b", caffeine("users", 2, 0))
    wait_until(lambda: prometheus.scalar(f"sum({hits})") == 42, timeout=20)
    push(exporter, "a", caffeine("users", 3, 0))  # a restarts
    push(exporter, "b", caffeine("users", 5, 0))
    wait_until(lambda: prometheus.scalar(f"sum by (cache) ({hits})") == 48, timeout=20)
    assert prometheus.scalar(f"sum(resets({hits}[5m]))") == 0  # Prometheus saw no reset
    assert prometheus.scalar(f"min(deriv({hits}[5m]))") >= 0


def test_an_instance_that_stops_pushing_disappears(exporter_factory):
    exporter = app_exporter(exporter_factory, **{"app.instance_ttl": "1s"})
    push(exporter, "short-lived", {**caffeine("users", 3, 1), "size": 10})
    m = exporter.scrape()
    assert m.value("cachewatch_app_cache_last_push_timestamp_seconds",
                   app_instance="short-lived") > 0
    assert m.value("cachewatch_cache_entries", cache="users", **APP) == 10
    time.sleep(1.3)
    m = exporter.scrape()
    assert not m.find("cachewatch_app_cache_last_push_timestamp_seconds")
    assert m.value("cachewatch_app_cache_instances", cache="users") == 0
    assert not m.find("cachewatch_cache_entries", cache="users")
    assert m.value(LOOKUPS, cache="users", result="hit", **APP) == 3  # counters stay


def test_token_size_and_shape_errors_name_the_problem(exporter_factory):
    exporter = app_exporter(exporter_factory, **{"app.token": "t0k",
                                                 "app.max_body_bytes": 4096})
    auth = {"Authorization": "Bearer t0k"}
    assert push(exporter, "a", caffeine("u", 1, 1)).status_code == 401
    big = [caffeine(f"c{i}", 1, 1) for i in range(200)]
    assert push(exporter, "a", *big, headers=auth).status_code == 413
    bad = push(exporter, "a", {"name": "u", "stats": {"hitCount": -1}}, headers=auth)
    assert bad.status_code == 422
    assert "caches.0.stats.hitCount" in bad.json()["error"]
    both = push(exporter, "a", {"name": "u", "stats": {}, "micrometer": {}}, headers=auth)
    assert "exactly one of stats (Caffeine) or micrometer" in both.json()["error"]
    unknown = push(exporter, "a", {"name": "u", "stats": {"hitcount": 1}}, headers=auth)
    assert "caches.0.stats.hitcount: Extra inputs are not permitted" in unknown.json()["error"]
    buckets = push(exporter, "a", {**caffeine("u", 1, 1), "latency": [
        {"op": "get", "buckets": {"0.1": 1, "+Inf": 1}, "sum": 0.01}]}, headers=auth)
    assert "bucket edges must be exactly" in buckets.json()["error"]
    garbled = httpx.post(exporter.url + "/api/v1/caches", content=b"{no", headers=auth)
    assert garbled.status_code == 400
    m = exporter.scrape()
    assert m.value("cachewatch_app_push_rejected_total", reason="auth") == 1
    assert m.value("cachewatch_app_push_rejected_total", reason="too_large") == 1
    assert m.value("cachewatch_app_push_rejected_total", reason="malformed") == 5
    assert not m.find(LOOKUPS)  # nothing half-counted


def test_caches_and_instances_are_capped(exporter_factory):
    exporter = app_exporter(exporter_factory, **{"app.max_caches": 3, "app.max_instances": 2})
    assert push(exporter, "a", *[caffeine(f"c{i}", 1, 0) for i in range(5)]).status_code == 202
    assert push(exporter, "b", caffeine("c0", 1, 0)).status_code == 202
    refused = push(exporter, "c", caffeine("c0", 1, 0))
    assert refused.status_code == 429
    assert "app.max_instances" in refused.json()["error"]
    m = exporter.scrape()
    assert m.label_values(LOOKUPS, "cache") == {"c0", "c1", "c2"}
    assert m.value("cachewatch_app_push_rejected_total", reason="instance_cap") == 1
    assert m.value("cachewatch_app_push_rejected_total", reason="cache_cap") == 2


def test_latency_histograms_merge_by_increase(exporter_factory):
    exporter = app_exporter(exporter_factory)
    stats = CacheStats("users")
    for seconds in (0.0002, 0.003, 0.03, 0.2):
        stats.observe(seconds)
    body = stats.payload()
    assert push(exporter, "a", body).status_code == 202
    stats.observe(0.04)
    assert push(exporter, "a", stats.payload()).status_code == 202
    m = exporter.scrape()
    labels = {"layer": "app", "cache": "users", "op": "get"}
    assert m.value("cachewatch_cache_latency_seconds_count", **labels) == 5
    assert m.value("cachewatch_cache_latency_seconds_bucket", le="0.05", **labels) == 4
    assert m.value("cachewatch_cache_latency_seconds_sum", **labels) == pytest.approx(0.2732)


JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)
FIELDS = st.sampled_from(["hitCount", "missCount", "totalLoadTime", "evictionWeight", "name",
                          "stats", "micrometer", "size", "parent", "latency", "cache_gets"])


@pytest.fixture(scope="module")
def fuzz_exporter():
    from support import Exporter

    exporter = Exporter(exporter_settings([], **{"redis.enabled": False})).start()
    yield exporter
    exporter.stop()


# The full 150 cases under CI; fewer in the fast local loop (each is a real HTTP round trip).
@settings(max_examples=150 if os.environ.get("CI") == "true" else 50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(
    JSON,
    st.fixed_dictionaries({"instance": st.text(max_size=200), "caches": st.lists(
        st.dictionaries(FIELDS, JSON, max_size=6), max_size=5)}),
    st.fixed_dictionaries({"instance": st.just("i"), "caches": st.lists(st.fixed_dictionaries({
        "name": st.text(min_size=1, max_size=10),
        "stats": st.dictionaries(FIELDS, st.integers() | st.floats(), max_size=4)}),
        min_size=1, max_size=3)}),
))
def test_fuzzed_payloads_never_get_a_500(fuzz_exporter, payload):
    exporter = fuzz_exporter
    response = httpx.post(exporter.url + "/api/v1/caches",
                          content=json.dumps(payload, allow_nan=True).encode(), timeout=10)
    assert response.status_code in (202, 400, 413, 422, 429), response.text
    assert exporter.get("/metrics").status_code == 200


def test_instrumented_lru_and_cachetools_in_the_apps_own_registry():
    caches = Caches()

    @cached("squares", maxsize=2, into=caches)
    def square(x):
        return x * x

    lru = cachetools.LRUCache(maxsize=2)
    instrument_cachetools(lru, "tc", into=caches)
    remembered = cachetools.cached(lru)(lambda x: x)
    for x in (1, 1, 2, 3, 1):
        square(x)
        remembered(x)
    assert lru.get("absent") is None  # a miss through .get() is counted too
    registry = CollectorRegistry()
    caches.register(registry)
    m = Metrics(generate_latest(registry).decode())
    for name, misses in (("squares", 4), ("tc", 5)):
        assert m.value(LOOKUPS, cache=name, result="hit", **APP) == 1
        assert m.value(LOOKUPS, cache=name, result="miss", **APP) == misses
        assert m.value("cachewatch_cache_evictions_total", cache=name, **APP) == 2
        assert m.value("cachewatch_cache_entries", cache=name, **APP) == 2


def test_pushing_to_an_absent_exporter_never_blocks_or_raises():
    caches = Caches()
    stats = caches.add(CacheStats("u"))
    pusher = caches.push_to(f"http://127.0.0.1:{free_port()}", interval=0.05, timeout=0.5)
    started = time.monotonic()
    for _ in range(1000):
        stats.hit()
    assert time.monotonic() - started < 0.5  # the app's own work is not held up
    wait_until(lambda: pusher.failed >= 3, timeout=10)
    pusher.stop(flush=False)
    assert pusher.pushed == 0


def test_example_two_level_app_matches_the_exported_effective_hit_rate(redis_plain,
                                                                       exporter_factory):
    exporter = app_exporter(exporter_factory)
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "two_level_app.py"), "--redis", redis_plain.url,
         "--exporter", exporter.url, "--requests", "5000", "--keys", "800", "--l1-size", "100",
         "--push-interval", "0.2", "--instance", "demo-1"],
        capture_output=True, text=True, timeout=120, check=True)
    counted = json.loads(run.stdout)
    assert counted["failed_pushes"] == 0
    m = exporter.scrape()
    lookups = sum(m.find(LOOKUPS, cache="catalog", **APP))
    effective = m.value("cachewatch_cache_effective_hits_total", cache="catalog", **APP)
    assert lookups == counted["lookups"] == 5000
    assert effective == counted["l1_hits"] + counted["l2_hits"]
    assert effective / lookups == counted["effective_hit_ratio"]
    assert m.value("cachewatch_app_cache_parent_info", cache="catalog", parent="catalog-redis",
                   parent_layer="redis") == 1
    # the L2 the app counted is the real Redis's own count of those GETs
    info = redis_plain.client().info("stats")
    assert info["keyspace_hits"] == counted["l2_hits"]
    assert info["keyspace_misses"] == counted["l2_misses"]


def test_a_peer_that_answers_garbage_never_raises_into_the_app():
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def answer_garbage() -> None:
        server.settimeout(10)
        for _ in range(3):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"SSH-2.0-not-http\r\n\r\n")
            conn.close()

    threading.Thread(target=answer_garbage, daemon=True).start()
    caches = Caches()
    stats = caches.add(CacheStats("u"))
    stats.observe(0.01, op="get")
    pusher = caches.push_to(f"http://127.0.0.1:{server.getsockname()[1]}", interval=0.05)
    wait_until(lambda: pusher.failed >= 1, timeout=10)
    pusher.stop(flush=True)  # the flush meets the same garbage: still no exception
    server.close()
    assert pusher.pushed == 0
