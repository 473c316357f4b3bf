"""The Redis collector against real redis-server instances: exact values, not just 200 OK."""

from __future__ import annotations

import logging
import math
import time

import pytest
from prometheus_client.utils import floatToGoString

from support import settings, wait_until

HIT = {"layer": "redis", "result": "hit"}
MISS = {"layer": "redis", "result": "miss"}
LOOKUPS = "cachewatch_cache_lookups_total"


def test_hits_and_misses_rise_by_exactly_what_was_done(redis_plain, exporter_factory):
    exporter = exporter_factory(settings([redis_plain.url]))
    cache = redis_plain.address
    client = redis_plain.client()
    client.mset({f"k{i}": i for i in range(10)})
    before = exporter.scrape()
    hits, misses = 37, 11
    for i in range(hits):
        assert client.get(f"k{i % 10}") is not None
    for i in range(misses):
        assert client.get(f"absent{i}") is None
    after = exporter.scrape()
    assert after.value(LOOKUPS, cache=cache, **HIT) - before.value(LOOKUPS, cache=cache, **HIT) \
        == hits
    assert after.value(LOOKUPS, cache=cache, **MISS) - before.value(LOOKUPS, cache=cache, **MISS) \
        == misses
    assert after.value("cachewatch_collector_up", collector="redis", target=cache) == 1


def test_sizes_keys_clients_and_commands_match_info(redis_factory, exporter_factory):
    server = redis_factory("--maxmemory", "64mb", "--databases", "4")
    client = server.client()
    client.mset({"a": 1, "b": 2, "c": 3})
    client.set("ttl", 1, ex=100)
    server.client(db=2).set("x", "y")
    exporter = exporter_factory(settings([f"sessions={server.url}"]))
    metrics = exporter.scrape()
    info = client.info()
    assert metrics.value("cachewatch_redis_db_keys", cache="sessions", db="0") == 4
    assert metrics.value("cachewatch_redis_db_keys_expiring", cache="sessions", db="0") == 1
    assert metrics.value("cachewatch_redis_db_keys", cache="sessions", db="2") == 1
    assert metrics.value("cachewatch_cache_entries", layer="redis", cache="sessions") == 5
    assert metrics.value("cachewatch_redis_maxmemory_bytes", cache="sessions") == 64 * 1024 * 1024
    used = metrics.value("cachewatch_cache_bytes", layer="redis", cache="sessions")
    assert abs(used - info["used_memory"]) < 256 * 1024  # memory moves a little between reads
    assert metrics.value("cachewatch_redis_connected_clients", cache="sessions") >= 2
    commands = metrics.value("cachewatch_redis_commands_processed_total", cache="sessions")
    assert info["total_commands_processed"] - 20 < commands <= info["total_commands_processed"]
    assert metrics.value("cachewatch_redis_info", cache="sessions", version=info["redis_version"],
                         role="master", mode="standalone") == 1


def test_evictions_and_expired_keys_are_the_servers_counters(redis_factory, exporter_factory):
    server = redis_factory("--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
    client = server.client()
    for i in range(400):  # ~4 MB of values into a 2 MB cache: the server must evict
        client.set(f"big{i}", b"x" * 10_000)
    client.set("short", 1, px=1)
    wait_until(lambda: client.get("short") is None)  # the read expires it
    exporter = exporter_factory(settings([server.url]))
    before = client.info("stats")
    metrics = exporter.scrape()
    info = client.info("stats")
    assert before["evicted_keys"] > 0
    # At maxmemory any command (our INFO included) may evict one more key: the exported value
    # is the server's counter at the moment of the scrape, between the two reads.
    assert before["evicted_keys"] <= metrics.value(
        "cachewatch_cache_evictions_total", layer="redis", cache=server.address) \
        <= info["evicted_keys"]
    assert metrics.value("cachewatch_redis_expired_keys_total", cache=server.address) \
        == info["expired_keys"] >= 1


def test_server_side_latency_percentiles_in_seconds(redis_plain, exporter_factory):
    client = redis_plain.client()
    for i in range(200):
        client.get(f"k{i}")
    exporter = exporter_factory(settings([redis_plain.url]))
    metrics = exporter.scrape()
    raw = client.execute_command("INFO", "latencystats")["latency_percentiles_usec_get"]
    calls = client.info("commandstats")["cmdstat_get"]["calls"]
    name = "cachewatch_redis_server_latency_seconds"
    labels = {"cache": redis_plain.address, "command": "get"}
    for key, quantile in (("p50", "0.5"), ("p99", "0.99"), ("p99.9", "0.999")):
        exported = metrics.value(name, quantile=quantile, **labels)
        assert exported == pytest.approx(raw[key] / 1e6, rel=0.25)  # GETs only: stable values
        assert exported < 0.01  # microseconds, not mistaken for seconds
    assert metrics.value(name + "_count", **labels) == calls == 200
    assert metrics.families[name].type == "summary"


def test_without_latencystats_the_rest_works_and_it_is_logged_once(
    redis_factory, exporter_factory, caplog
):
    # Redis < 7 has no INFO latencystats; a Redis 7 with latency tracking off answers the same.
    caplog.set_level(logging.INFO, logger="cachewatch.redis")
    server = redis_factory("--latency-tracking", "no")
    exporter = exporter_factory(settings([server.url]))
    for _ in range(3):
        metrics = exporter.scrape()
        exporter.scrape(f"/probe?target={server.address}")  # probes share the memory
    assert not metrics.find("cachewatch_redis_server_latency_seconds")
    assert metrics.value("cachewatch_collector_up", collector="redis", target=server.address) == 1
    assert metrics.find(LOOKUPS, cache=server.address, **HIT) == [0]
    notes = [r for r in caplog.records if "latencystats" in r.getMessage()]
    assert len(notes) == 1
    assert notes[0].target == server.address


def test_latency_probe_fills_the_histogram_and_never_moves_hit_or_miss(
    redis_plain, exporter_factory
):
    client = redis_plain.client()
    client.set("k", 1)
    client.get("k")
    client.get("nope")
    exporter = exporter_factory(settings([redis_plain.url], **{"redis.probe_interval": 0.01}))
    cache = redis_plain.address
    before_info = client.info("stats")
    before = exporter.scrape()
    count = "cachewatch_cache_latency_seconds_count"
    probe = {"layer": "redis", "cache": cache, "op": "ping"}
    start = before.value(count, **probe)
    wait_until(lambda: exporter.scrape().value(count, **probe) >= start + 50, timeout=20)
    after_info = client.info("stats")
    after = exporter.scrape()
    # The server's own counters did not move, and neither did what we export from them.
    assert after_info["keyspace_hits"] == before_info["keyspace_hits"] == 1
    assert after_info["keyspace_misses"] == before_info["keyspace_misses"] == 1
    assert after.value(LOOKUPS, cache=cache, **HIT) == 1
    assert after.value(LOOKUPS, cache=cache, **MISS) == 1
    # Round trips on loopback land well under the 50 ms bucket edge, which exists.
    le_50ms = after.value("cachewatch_cache_latency_seconds_bucket", le="0.05", **probe)
    assert le_50ms >= after.value(count, **probe) * 0.9
    assert after.value("cachewatch_cache_latency_seconds_sum", **probe) > 0


def test_probe_interval_sets_the_rate(redis_plain, exporter_factory):
    exporter = exporter_factory(settings([redis_plain.url], **{"redis.probe_interval": "100ms"}))
    probe = {"layer": "redis", "cache": redis_plain.address, "op": "ping"}
    name = "cachewatch_cache_latency_seconds_count"
    first = exporter.scrape().value(name, **probe)
    time.sleep(1.0)
    done = exporter.scrape().value(name, **probe) - first
    assert 5 <= done <= 12  # ~10 a second, with room for a loaded machine


def test_several_targets_each_labelled_by_name(redis_factory, exporter_factory):
    one, two = redis_factory(), redis_factory()
    one.client().get("miss")
    two.client().set("a", 1)
    two.client().get("a")
    exporter = exporter_factory(settings([f"sessions={one.url}", f"pages={two.url}"]))
    metrics = exporter.scrape()
    assert metrics.value(LOOKUPS, cache="sessions", **MISS) == 1
    assert metrics.value(LOOKUPS, cache="sessions", **HIT) == 0
    assert metrics.value(LOOKUPS, cache="pages", **HIT) == 1
    assert metrics.label_values("cachewatch_collector_up", "target") == {"sessions", "pages"}
    # one family block per metric even with two targets (promtool rejects repeats)
    assert metrics.text.count("# TYPE cachewatch_cache_lookups_total counter") == 1


HISTOGRAM = "cachewatch_redis_command_latency_seconds"


def test_command_latency_histogram_is_the_servers_latency_histogram(redis_plain,
                                                                    exporter_factory):
    client = redis_plain.client()
    client.rpush("big", *range(20_000))
    for _ in range(3):
        client.lrange("big", 0, -1)  # milliseconds each: buckets far above GET's
    for i in range(300):
        client.get(f"k{i}")
    exporter = exporter_factory(settings([f"main={redis_plain.url}"]))
    metrics = exporter.scrape()
    reply = client.execute_command("LATENCY", "HISTOGRAM", "get", "lrange")  # RESP3: maps
    raw = {name.decode(): fields[b"histogram_usec"] for name, fields in reply.items()}
    assert metrics.families[HISTOGRAM].type == "histogram"
    for command, calls in (("get", 300), ("lrange", 3)):
        labels = {"cache": "main", "command": command}
        assert metrics.value(HISTOGRAM + "_count", **labels) == calls
        assert metrics.value(HISTOGRAM + "_bucket", le="+Inf", **labels) == calls
        for usec, cumulative in raw[command].items():  # every bucket the server reports
            edge = 2 ** (round(math.log2(usec / 1.024)) + 10) / 1e9
            assert metrics.value(HISTOGRAM + "_bucket", le=floatToGoString(edge),
                                 **labels) == cumulative, (command, usec)
    # the sum is INFO commandstats' usec: GETs take microseconds, LRANGE of 20k items far more
    get_sum = metrics.value(HISTOGRAM + "_sum", cache="main", command="get")
    lrange_sum = metrics.value(HISTOGRAM + "_sum", cache="main", command="lrange")
    assert 0 < get_sum / 300 < 0.0005 < lrange_sum / 3
    assert metrics.value(HISTOGRAM + "_bucket", cache="main", command="lrange",
                         le="1.024e-06") == 0


def test_command_histogram_keeps_the_busiest_commands_and_folds_the_rest(redis_factory,
                                                                         exporter_factory):
    server = redis_factory()
    client = server.client()
    for _ in range(50):
        client.get("a")
    for _ in range(20):
        client.set("a", 1)
    client.incr("n")
    client.hset("h", "f", 1)
    exporter = exporter_factory(settings([f"main={server.url}"],
                                         **{"redis.latency_histogram_commands": 2}))
    metrics = exporter.scrape()
    assert metrics.label_values(HISTOGRAM + "_count", "command") == {"get", "set", "other"}
    stats = client.info("commandstats")
    folded = sum(v["calls"] for k, v in stats.items() if k.removeprefix("cmdstat_")
                 not in ("get", "set"))
    # everything else the server ran (incr, hset, INFO, ...) in one series; the exporter's own
    # INFO and LATENCY HISTOGRAM calls of this scrape are counted after the histogram was read
    assert folded - 4 <= metrics.value(HISTOGRAM + "_count", cache="main", command="other") \
        <= folded
    later = exporter.scrape()  # the admitted commands stay the same scrape after scrape
    assert later.label_values(HISTOGRAM + "_count", "command") == {"get", "set", "other"}


def test_no_command_histogram_when_turned_off(redis_plain, exporter_factory):
    redis_plain.client().get("a")
    exporter = exporter_factory(settings([redis_plain.url],
                                         **{"redis.latency_histogram_commands": 0}))
    metrics = exporter.scrape()
    assert not metrics.find(HISTOGRAM + "_count")
    assert metrics.find("cachewatch_redis_server_latency_seconds_count", command="get") == [1]
