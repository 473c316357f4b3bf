"""The status page's numbers for one cache, from the history of the exposition."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..collectors.health import TargetState
from ..sources import layers, sections
from .history import WINDOWS, Key, Snapshot, View, quantile


@dataclass
class Row:
    """One cache as the page shows it."""

    layer: str
    cache: str
    rates: list[float | None] = field(default_factory=list)  # hit ratio per window
    seen: float = 0.0  # lookups over the first window (or so far)
    hits_seen: float = 0.0
    per_second: float | None = None  # lookups a second over the first window (or so far)
    p99: float | None = None  # seconds, over the first window
    latency: dict[str, float] = field(default_factory=dict)  # bucket increases, first window
    minutes: list[float | None] = field(default_factory=list)  # hit ratio per sparkline step
    step: float = 60.0  # seconds a sparkline point stands for
    state: TargetState | None = None

    @property
    def rate(self) -> float | None:
        """The hit ratio over the first window."""
        return self.rates[0] if self.rates else None


def duration(seconds: float | None) -> str:
    """0.0123 -> ``12.30 ms``; ``–`` when not measured."""
    if seconds is None:
        return "–"
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _layer_of(collector: str) -> str:
    """The layer a collector's targets belong to, as its section declares it."""
    section = sections().get(collector)
    return section.shown_layer if section else collector


def _fill(row: Row, view: View, snapshot: Snapshot, now: float) -> None:
    """The row's rates, speed, sparkline and P99 from the history and the counters now."""
    counters = snapshot.counters
    hit: Key = ("lookups", row.layer, row.cache, "hit")
    miss: Key = ("lookups", row.layer, row.cache, "miss")
    hits_now, misses_now = counters.get(hit, 0.0), counters.get(miss, 0.0)
    for window in WINDOWS:
        hits = view.increase(hit, hits_now, window, now)
        total = hits + view.increase(miss, misses_now, window, now)
        row.rates.append(hits / total if total > 0 else None)
        if window == WINDOWS[0]:
            row.hits_seen, row.seen = hits, total
    speeds = [view.per_second(key, value, WINDOWS[0], now)
              for key, value in ((hit, hits_now), (miss, misses_now))]
    row.per_second = None if None in speeds else sum(s for s in speeds if s is not None)
    row.step = view.step(now)
    hit_steps = view.minutes(hit, hits_now, now, step=row.step)
    miss_steps = view.minutes(miss, misses_now, now, step=row.step)
    # A cache that never missed (or never hit) has no such series: zero where the other has one.
    if hit not in counters:
        hit_steps = [None if m is None else 0.0 for m in miss_steps]
    if miss not in counters:
        miss_steps = [None if h is None else 0.0 for h in hit_steps]
    row.minutes = [None if h is None or m is None or h + m <= 0 else h / (h + m)
                   for h, m in zip(hit_steps, miss_steps, strict=True)]
    buckets = snapshot.latency.get((row.layer, row.cache))
    if buckets:
        row.latency = view.latency_increase((row.layer, row.cache), buckets, WINDOWS[0], now)
        row.p99 = quantile(0.99, row.latency)


def rows(view: View, now_snapshot: Snapshot, now: float,
         states: Iterable[TargetState]) -> list[Row]:
    """Every cache with lookups, plus every target the exporter reads (a down target has no
    lookups, and is the row a user most needs to see)."""
    counters = now_snapshot.counters
    caches = sorted({(layer, cache) for kind, layer, cache, _ in counters if kind == "lookups"})
    by_key = {key: Row(*key) for key in caches}
    for state in states:
        key = (_layer_of(state.collector), state.target)
        by_key.setdefault(key, Row(*key)).state = state
    for (layer, cache), row in by_key.items():
        if ("lookups", layer, cache, "hit") in counters or \
                ("lookups", layer, cache, "miss") in counters:
            _fill(row, view, now_snapshot, now)
    order = [layer.name for layer in layers()]
    return sorted(by_key.values(), key=lambda r: (
        order.index(r.layer) if r.layer in order else len(order), r.layer, r.cache))
