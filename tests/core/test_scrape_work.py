"""Regression guards for the scrape's cost that count work, not time (time is noise on a
shared machine): a series is rendered once, not on every scrape; a scrape of an unchanged
target allocates no more than the first one did."""

from __future__ import annotations

import gc
import tracemalloc

from prometheus_client.exposition import choose_encoder

from cachewatch.metrics import contract, series
from cachewatch.metrics.contract import Families
from cachewatch.metrics.exposition import _fast
from cachewatch.sources.redis import contract as redis_contract
from cachewatch.sources.redis.histogram import EDGES_LE

OPENMETRICS = "application/openmetrics-text;version=1.0.0"


def _scrape(hits: float) -> bytes:
    """One collection and encoding of a target's families, as a scrape makes them."""
    out = Families()
    out.add(contract.CACHE_LOOKUPS, {"layer": "redis", "cache": "a", "result": "hit"}, hits)
    for command in ("get", "set", "hset"):
        out.add_cumulative(redis_contract.REDIS_COMMAND_LATENCY,
                           {"cache": "a", "command": command}, EDGES_LE,
                           [float(i) for i in range(len(EDGES_LE))], 0.5)
    out.add_summary(redis_contract.REDIS_SERVER_LATENCY, {"cache": "a", "command": "get"},
                    3, 0.1, {"0.5": 0.01, "0.99": 0.02})

    class Fixed:
        def collect(self):
            return iter(out)

    encoder, _ = choose_encoder(OPENMETRICS)
    return _fast(encoder)(Fixed())


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
