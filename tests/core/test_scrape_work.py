"""Regression guards for the scrape's cost that count work, not time (time is noise on a
shared machine): a series is rendered once, not on every scrape; a scrape of an unchanged
target allocates no more than the first one did; a histogram child is written without sample
objects, in a bounded number of calls and memory; the label-overflow walk is not repeated;
collectors' families are merged without copies (but never changed); ``/metrics`` does not go
through the framework."""

from __future__ import annotations

import asyncio
import cProfile
import gc
import pstats
import tracemalloc
from typing import Any

import pytest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import generate_latest

from cachewatch.http.server import create_app
from cachewatch.metrics import cardinality, contract, series
from cachewatch.metrics.cardinality import CapOverflow, LabelCap
from cachewatch.metrics.children import Child
from cachewatch.metrics.contract import Families
from cachewatch.metrics.exposition import Exposition, _fast
from cachewatch.runtime import Runtime
from cachewatch.sources.redis import contract as redis_contract
from cachewatch.sources.redis.histogram import EDGES_LE

OPENMETRICS = "application/openmetrics-text;version=1.0.0"
# A default Redis scrape's command histogram: the ten busiest commands, the rest in "other".
COMMANDS = ("get", "set", "hset", "incr", "lpush", "ping", "info", "select", "config|get",
            "other")


def _families(hits: float, commands: tuple[str, ...] = ("get", "set", "hset")) -> Families:
    """A target's families, as a scrape collects them."""
    out = Families()
    out.add(contract.CACHE_LOOKUPS, {"layer": "redis", "cache": "a", "result": "hit"}, hits)
    for command in commands:
        out.add_cumulative(redis_contract.REDIS_COMMAND_LATENCY,
                           {"cache": "a", "command": command}, EDGES_LE,
                           [float(i) for i in range(len(EDGES_LE))], 0.5)
    out.add_summary(redis_contract.REDIS_SERVER_LATENCY, {"cache": "a", "command": "get"},
                    3, 0.1, {"0.5": 0.01, "0.99": 0.02})
    return out


class _Fixed:
    def __init__(self, out: Families) -> None:
        self.out = out

    def collect(self):
        return iter(self.out)


def _scrape(hits: float, commands: tuple[str, ...] = ("get", "set", "hset")) -> bytes:
    """One collection and encoding of a target's families, as a scrape makes them."""
    encoder, _ = choose_encoder(OPENMETRICS)
    return _fast(encoder)(_Fixed(_families(hits, commands)))


def test_each_series_is_rendered_once_not_on_every_scrape(monkeypatch):
    rendered: list[str] = []
    real = series.render
    monkeypatch.setattr(series, "render", lambda name, labels: rendered.append(name)
                        or real(name, labels))
    first = _scrape(1.0)
    assert len(rendered) == 1 + 3 * (len(EDGES_LE) + 2) + 2 + 2  # every series, once
    rendered.clear()
    second = _scrape(2.0)
    assert rendered == []
    assert second == first.replace(b'result="hit"} 1.0', b'result="hit"} 2.0')
    assert second != first  # the value is read anew: only the text around it is kept


def test_a_scrape_of_an_unchanged_target_allocates_no_more_than_the_first():
    _scrape(1.0)  # the series made and remembered
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        _scrape(1.0)
        gc.collect()  # the scrape's own cycles (a class per call) are not growth
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    kept = sum(stat.size_diff for stat in after.compare_to(before, "filename")
               if stat.size_diff > 0 and "tracemalloc" not in str(stat.traceback))
    assert kept < 1024, f"a repeated scrape kept {kept} bytes: something grows per scrape"


def test_a_histogram_child_is_written_without_making_its_samples(monkeypatch):
    expected = generate_latest(_Fixed(_families(1.0, COMMANDS)))  # the library's own encoder
    monkeypatch.setattr(Child, "samples", lambda self: pytest.fail("samples made"))
    assert _scrape(1.0, COMMANDS) == expected


def test_a_scrape_of_ten_command_histograms_stays_within_its_calls_and_memory():
    """Before the children were kept whole: 911 calls and 78 KB beyond the body; 310 calls
    before summaries were children too."""
    _scrape(1.0, COMMANDS)
    profile = cProfile.Profile()
    profile.enable()
    body = _scrape(1.0, COMMANDS)
    profile.disable()
    calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
    assert calls < 330, f"{calls} calls for one scrape"  # 303 with summaries as children
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        _scrape(1.0, COMMANDS)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    # the text, and its bytes, are the answer; what a scrape makes beyond them is work
    assert peak - 2 * len(body) < 60_000, f"{peak - 2 * len(body)} bytes beyond the body"


def test_the_overflow_walk_is_not_repeated_once_a_cap_has_folded(monkeypatch):
    class Owner:
        name = "owner"

        def __init__(self) -> None:
            self.cap = LabelCap(1)

    monkeypatch.setattr(LabelCap, "folds", 0)  # other tests' caps folded too
    owner = Owner()
    owner.cap("a")
    owner.cap("b")  # folded
    walks: list[object] = []
    real = cardinality.label_caps
    monkeypatch.setattr(cardinality, "label_caps",
                        lambda *args: walks.append(args) or real(*args))
    overflow = CapOverflow([owner])
    first = [s.value for m in overflow.collect() for s in m.samples]
    owner.cap("c")  # folded again: the count moves, the caps do not
    second = [s.value for m in overflow.collect() for s in m.samples]
    assert (first, second) == ([1], [2])
    assert len(walks) == 1


class _Collector:
    """A collector that makes its families fresh on every scrape, and remembers them."""

    def __init__(self, *samples: tuple[contract.MetricSpec, dict[str, str], float]) -> None:
        self.samples = samples
        self.made: list[Any] = []

    def collect(self):
        out = Families()
        for spec, labels, value in self.samples:
            out.add(spec, labels, value)
        self.made = list(out)
        return iter(self.made)


def _values(metric: Any) -> list[float]:
    return [sample.value for sample in metric.samples]


def test_a_scrape_merges_its_collectors_families_without_copying_them():
    """Before, every family of every collector was copied on every scrape (77 copies of a
    default Redis scrape); now only a family whose name a second collector also yields."""
    core = {"layer": "redis", "cache": "a"}
    first = _Collector((contract.CACHE_LOOKUPS, {**core, "result": "hit"}, 1.0),
                       (contract.CACHE_ENTRIES, core, 5.0))
    second = _Collector((contract.CACHE_LOOKUPS, {**core, "cache": "b", "result": "hit"}, 2.0),
                        (contract.HTTP_REFUSED, {"reason": "unauthorized"}, 3.0))
    metrics = asyncio.run(Exposition([first, second]).collect_async())
    assert [m.name for m in metrics] == ["cachewatch_cache_lookups", "cachewatch_cache_entries",
                                         "cachewatch_http_refused"]
    made = [*first.made, *second.made]
    copied = [m.name for m in metrics if not any(m is f for f in made)]
    assert copied == ["cachewatch_cache_lookups"]  # the one name both collectors yield
    assert _values(metrics[0]) == [1.0, 2.0]
    # the collectors' own families are left as they made them
    assert [_values(m) for m in made] == [[1.0], [5.0], [2.0], [3.0]]


def test_a_borrowed_family_is_copied_before_anything_is_added_to_it():
    held = _families(1.0)  # a read two scrapes share, or a collector's cached families
    before = {m.name: list(m.samples) for m in held}
    merged = Families()
    merged.extend(held)
    merged.add(contract.CACHE_LOOKUPS, {"layer": "redis", "cache": "b", "result": "hit"}, 2.0)
    merged.add_cumulative(redis_contract.REDIS_COMMAND_LATENCY, {"cache": "b", "command": "get"},
                          EDGES_LE, [1.0] * len(EDGES_LE), 0.5)
    merged.add_summary(redis_contract.REDIS_SERVER_LATENCY, {"cache": "b", "command": "get"},
                       1, 0.1, {"0.5": 0.01})
    merged.extend(_families(3.0))
    assert {m.name: list(m.samples) for m in held} == before
    lookups = next(m for m in merged if m.name == "cachewatch_cache_lookups")
    assert _values(lookups) == [1.0, 2.0, 3.0]
    latency = next(m for m in merged if m.name == redis_contract.REDIS_COMMAND_LATENCY.name)
    assert len(latency.samples) == 7 * (len(EDGES_LE) + 2)  # 3 + 1 + 3 children


def test_a_counter_added_and_merged_into_one_families_is_one_family():
    """``add`` and ``extend`` collect a counter under one name (the family's), so a
    collector's own error counters and its probe's merge where they meet, without a copy."""
    out = Families()
    labels = {"collector": "redis", "target": "a", "reason": "timeout"}
    out.add(contract.COLLECTOR_ERRORS, labels, 1.0)
    probe = Families()
    probe.add(contract.COLLECTOR_ERRORS, {**labels, "collector": "redis_probe"}, 2.0)
    out.extend(probe)
    assert [(m.name, _values(m)) for m in out] == [("cachewatch_collector_errors", [1.0, 2.0])]
    assert [_values(m) for m in probe] == [[2.0]]


def test_metrics_is_answered_ahead_of_the_framework():
    app = create_app([], Runtime())
    framework = app.app.app  # Guard -> FastPaths -> the FastAPI application
    seen: list[str] = []

    async def counting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["method"])
        await framework(scope, receive, send)

    app.app.app = counting
    app.app.paths["/metrics"].framework = counting

    def request(method: str) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": method, "path": "/metrics", "raw_path": b"/metrics",
                 "query_string": b"", "root_path": "", "headers": [(b"host", b"x")],
                 "http_version": "1.1", "scheme": "http", "client": ("127.0.0.1", 1),
                 "server": ("127.0.0.1", 2), "asgi": {"version": "3.0"}}
        asyncio.run(app(scope, receive, send))
        return sent

    answer = request("GET")
    assert answer[0]["status"] == 200
    assert seen == []
    assert b"cachewatch_build_info" in answer[1]["body"]
    assert request("HEAD")[0]["status"] == 405
    assert seen == ["HEAD"]


def _made(collector: Any) -> list[tuple[str, list[tuple[dict[str, str], float]]]]:
    return [(m.name, [(dict(s.labels), s.value) for s in m.samples])
            for m in collector.collect()]


def test_a_local_collector_is_made_again_only_after_its_owner_changed(monkeypatch):
    """Refusals, the state store's health and a ledger's counts are made once per change, not
    per scrape (``metrics.cached``); every change shows on the next scrape."""
    from cachewatch.http.refusals import RefusalCollector
    from cachewatch.sources.ci.receiver import RESTORES, CiCacheCollector
    from cachewatch.sources.ci.settings import CiSettings
    from cachewatch.state import Change

    runtime = Runtime()
    refusals = RefusalCollector(runtime.refusals)
    ci = CiCacheCollector(CiSettings(enabled=True), runtime.state.ledger("ci-work", 100))
    collectors = (refusals, runtime.state, ci)
    made = [Families.add]

    def counting(self: Families, *args: Any) -> None:
        made.append(args[0])
        real(self, *args)

    real = Families.add
    monkeypatch.setattr(Families, "add", counting)
    first = [list(c.collect()) for c in collectors]
    made.clear()
    again = [list(c.collect()) for c in collectors]
    assert made == []  # nothing changed: nothing made
    assert all(a is b for x, y in zip(first, again, strict=True)
               for a, b in zip(x, y, strict=True))
    before = {c: _made(c) for c in collectors}

    runtime.refusals.refused("unauthorized", "refused")
    runtime.state._refuse("timeout")
    ci.ledger.record_later([Change({(RESTORES, "gitlab", "deps", "hit"): 2.0})])
    after = {c: _made(c) for c in collectors}
    assert made  # every one made again
    assert after[refusals] != before[refusals]
    http = {s[0]["reason"]: s[1] for n, v in after[refusals] for s in v}
    assert http["unauthorized"] == 1
    refused = {s[0]["reason"]: s[1] for n, v in after[runtime.state] for s in v
               if n == "cachewatch_state_refused"}
    assert refused["timeout"] == 1
    lookups = next(v for n, v in after[ci] if n == "cachewatch_cache_lookups")
    assert lookups == [({"layer": "ci", "cache": "deps", "result": "hit"}, 2.0)]
    # the families an earlier scrape holds were not changed under it
    assert [(m.name, [(dict(s.labels), s.value) for s in m.samples]) for m in first[2]] \
        == before[ci]
