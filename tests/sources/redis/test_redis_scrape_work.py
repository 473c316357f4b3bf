"""Regression guards for what a Redis read costs, counted as work, not time: ``INFO
commandstats`` is parsed once per read (it was parsed for the latency summary, for the histogram
sums and for the doctor's rules), and a ``LATENCY HISTOGRAM`` reply's integer arrays are read
in one step each. The replies are those captured from a real redis-server 7.0
(tests/fixtures/redis)."""

from __future__ import annotations

import cProfile
import json
import pstats

from cachewatch.metrics.cardinality import LabelCap
from cachewatch.metrics.contract import Families
from cachewatch.resp import Replies
from cachewatch.sources.redis import families, histogram, info, node
from cachewatch.sources.redis.doctor import signals

from support import FIXTURES

REDIS = FIXTURES / "redis"


def _wire(value: object) -> bytes:
    """A reply as the server writes it to a RESP2 client."""
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, str):
        return b"$%d\r\n%s\r\n" % (len(value), value.encode())
    assert isinstance(value, list)
    return b"*%d\r\n" % len(value) + b"".join(_wire(item) for item in value)


def _parsed(wire: bytes) -> list:
    replies = Replies()
    replies.feed(wire)
    reply = replies.pop()
    assert isinstance(reply, list)
    return reply


def test_commandstats_is_parsed_once_and_the_keyspace_summed_once(monkeypatch):
    fields = info.parse_info(b"".join((REDIS / f"info-{section}.txt").read_bytes()
                                      for section in ("default", "latencystats")))
    stats = info.parse_commandstats((REDIS / "info-commandstats.txt").read_bytes())
    assert stats["get"] == (40.0, 34.0)  # cmdstat_get:calls=40,usec=34,...
    nested: list[str] = []
    real = info.parse_nested
    monkeypatch.setattr(families, "parse_nested", lambda value: nested.append(value)
                        or real(value))
    monkeypatch.setattr(signals, "parse_nested", lambda value: nested.append(value)
                        or real(value))
    histogram = json.loads((REDIS / "latency-histogram.json").read_text())
    families._keyspace.cache_clear()  # other tests read these lines too
    families._percentiles.cache_clear()
    out = Families()
    assert families.add_info(out, "work-guard", fields, stats)
    families.add_histograms(out, "work-guard", _parsed(_wire(histogram)), stats, LabelCap(10))
    databases = [key for key in fields if key.startswith("db")]
    latencies = [key for key in fields if key.startswith("latency_percentiles_usec_")]
    assert len(databases) + len(latencies) == 2 + 7
    # one per distinct database line and latencystats line (two commands of this server have
    # the same percentiles): none for commandstats, none again for the doctor's keyspace
    assert sorted(nested) == sorted({fields[key] for key in (*databases, *latencies)})
    assert len(nested) == 8
    # a line the last read saw is not parsed again; a line that moved is
    nested.clear()
    moved = {**fields, "db0": fields["db0"].replace("keys=", "keys=1")}
    again = Families()
    assert families.add_info(again, "work-guard", moved, stats)
    assert nested == [moved["db0"]]
    keys = next(m for m in again if m.name == "cachewatch_redis_db_keys")
    assert keys.samples[0].value == float("1" + fields["db0"].split("keys=")[1].split(",")[0])


def test_a_latency_histogram_reply_is_read_in_a_bounded_number_of_calls():
    """Ten commands of twelve buckets (a default scrape's histogram): item by item, 683 calls."""
    reply = [part for i in range(10) for part in (
        f"cmd{i}", ["calls", 12345, "histogram_usec",
                    [n for k in range(12) for n in (2 ** k, 1000 * k)]])]
    wire = _wire(reply)
    profile = cProfile.Profile()
    profile.enable()
    parsed = _parsed(wire)
    profile.disable()
    assert parsed[:2] == [b"cmd0", [b"calls", 12345, b"histogram_usec",
                                    [n for k in range(12) for n in (2 ** k, 1000 * k)]]]
    assert len(parsed) == 20
    calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
    assert calls < 400, f"{calls} calls for one LATENCY HISTOGRAM reply"


def _ladders(commands: dict) -> dict:
    return {name: (latency.calls, latency.cumulative) for name, latency in commands.items()}


def test_a_latency_histogram_reply_is_read_straight_from_the_wire_as_the_parser_reads_it():
    """``histogram.scan``: one match per command instead of the general RESP parser's five
    parses and a list; what it reads is what the general path reads, and anything it cannot
    read whole (a reply not all received, an error) is left to the general parser."""
    wire = _wire(json.loads((REDIS / "latency-histogram.json").read_text()))
    expected = _ladders(histogram.parse_latency_histogram(_parsed(wire)))
    assert len(expected) == 7  # commands of the captured reply
    profile = cProfile.Profile()
    profile.enable()
    read = histogram.scan(wire + b"+PONG\r\n")  # a reply after it is not read
    profile.disable()
    assert read is not None
    assert read[1] == len(wire)
    assert _ladders(read[0]) == expected
    assert histogram.parse_latency_histogram(read[0]) is read[0]
    calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
    assert calls < 20 * len(expected), f"{calls} calls for one reply"  # 117 when written
    assert [cut for cut in range(len(wire)) if histogram.scan(wire[:cut]) is not None] == []
    assert histogram.scan(b"-NOPERM this user has no permissions\r\n") is None
    odd = wire.replace(b"$5\r\ncalls", b"$5\r\nCALLS", 1)  # not the shape: the parser reads it
    assert histogram.scan(odd) is None


def test_a_redis_read_becomes_families_in_a_bounded_number_of_calls():
    """INFO (default, latencystats, commandstats) and the histogram's bytes to families: 1,355
    calls before label sets were kept per target, lines parsed once per distinct value and the
    histogram read from the wire; 887 when this was written."""
    sections = [(REDIS / f"info-{section}.txt").read_bytes()
                for section in ("default", "latencystats", "commandstats")]
    wire = _wire(json.loads((REDIS / "latency-histogram.json").read_text()))

    def read() -> Families:
        fields, stats = node._info(sections)
        out = Families()
        families.add_info(out, "work-guard", fields, stats)
        found = histogram.scan(wire)
        assert found is not None
        families.add_histograms(out, "work-guard", found[0], stats, LabelCap(10))
        return out

    read()  # series rendered, lines parsed once
    profile = cProfile.Profile()
    profile.enable()
    out = read()
    profile.disable()
    assert {m.name for m in out} >= {"cachewatch_redis_command_latency_seconds",
                                     "cachewatch_redis_server_latency_seconds"}
    calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
    assert calls < 950, f"{calls} calls for one read"
