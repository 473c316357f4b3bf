"""The LATENCY HISTOGRAM parser on a reply captured from a real redis-server 7.0
(tests/fixtures/redis/latency-histogram.json, taken in the same pipeline as the INFO fixtures)."""

from __future__ import annotations

import json

import pytest

from cachewatch.sources.redis import contract
from cachewatch.sources.redis.histogram import EDGES, EDGES_LE, edge_index, parse_latency_histogram

from support import FIXTURES

CAPTURED = json.loads((FIXTURES / "redis" / "latency-histogram.json").read_text())


def _resp2(value):
    """The reply as the collector's RESP2 client gets it: bulk strings as bytes."""
    if isinstance(value, list):
        return [_resp2(item) for item in value]
    return value.encode() if isinstance(value, str) else value


def _resp3(value):
    """The same reply as a RESP3 client gets it: maps instead of flat lists."""
    return {name: {"calls": fields[1], "histogram_usec": dict(zip(fields[3][::2],
                                                                 fields[3][1::2], strict=True))}
            for name, fields in zip(value[::2], value[1::2], strict=True)}


def _at(latency, seconds: float) -> float:
    return latency.cumulative[EDGES.index(seconds)]


@pytest.mark.parametrize("shape", [_resp2, _resp3, lambda v: v], ids=["resp2", "resp3", "str"])
def test_captured_reply_becomes_cumulative_buckets_on_the_fixed_ladder(shape):
    commands = parse_latency_histogram(shape(CAPTURED))
    assert set(commands) == {"lrange", "rpush", "info", "get", "select", "set", "mset"}
    get = commands["get"]  # reply: 1 usec -> 35, 2 -> 37, 4 -> 40 of 40 calls
    assert get.calls == 40
    assert _at(get, 1.024e-06) == 35
    assert _at(get, 2.048e-06) == 37
    assert _at(get, 4.096e-06) == 40
    assert get.cumulative[-1] == 40  # and every edge above
    lrange = commands["lrange"]  # reply: 2113 usec -> 2, 8454 -> 3 (buckets 11 and 13)
    assert _at(lrange, 0.001048576) == 0
    assert _at(lrange, 0.002097152) == 2
    assert _at(lrange, 0.004194304) == 2  # bucket 12 left out of the reply: no growth there
    assert _at(lrange, 0.008388608) == 3
    info = commands["info"]  # 33 usec -> 1, 264 -> 3
    assert [_at(info, e) for e in (1.6384e-05, 3.2768e-05, 0.000131072, 0.000262144)] == \
        [0, 1, 1, 3]


def test_every_bucket_is_cumulative_and_ends_at_the_call_count():
    for latency in parse_latency_histogram(CAPTURED).values():
        assert latency.cumulative == sorted(latency.cumulative)
        assert latency.cumulative[-1] == latency.calls
        assert len(latency.counts()) == len(EDGES_LE)
        assert (EDGES_LE[-1], latency.counts()[-1]) == ("+Inf", latency.calls)
        assert list(EDGES_LE[:3]) == ["1.024e-06", "2.048e-06", "4.096e-06"]


def test_redis_bucket_keys_map_to_their_power_of_two():
    # What redis-server 7.0 writes for bucket k: hdr_histogram's highest value equivalent to
    # 1024 * 2^k ns (2^k * 1024 * (1 + 1/128) - 1 at its precision of 2 digits) in whole usec;
    # 1, 2, 4, 8, 33, 264, 2113 and 8454 are in the captured reply, the rest follow the rule.
    written = [1, 2, 4, 8, 16, 33, 66, 132, 264, 528, 1056, 2113, 4227, 8454, 16908, 33816,
               67633, 135266, 270532, 541065, 1082130]
    assert [edge_index(usec) for usec in written] == list(range(21))
    assert len(EDGES) == 21
    assert EDGES[-1] > 1.0
    assert contract.REDIS_COMMAND_LATENCY.labels == ("cache", "command")


def test_folding_adds_bucket_by_bucket():
    commands = parse_latency_histogram(CAPTURED)
    folded = commands["set"]
    folded.add(commands["mset"])
    assert folded.calls == 3
    assert _at(folded, 8.192e-06) == 3
    assert _at(folded, 4.096e-06) == 0


def test_an_empty_reply_has_no_commands():
    # latency-tracking off, or no command run yet
    assert parse_latency_histogram([]) == {}


def test_info_lines_are_split_at_their_first_colon_and_headers_skipped():
    from cachewatch.sources.redis.info import parse_info

    raw = (b"# Server\r\nredis_version:7.0.15\r\nexecutable:/usr/bin/redis-server\r\n\r\n"
           b"# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\nmaster_host:::1\r\n"
           b"#comment:not a field\r\nlatency_percentiles_usec_get:p50=1.003,p99=2.007\r\n")
    assert parse_info(raw) == {
        "redis_version": "7.0.15", "executable": "/usr/bin/redis-server",
        "db0": "keys=3,expires=1,avg_ttl=0", "master_host": "::1",
        "latency_percentiles_usec_get": "p50=1.003,p99=2.007"}
    assert parse_info(raw.replace(b"\r\n", b"\n")) == parse_info(raw)
