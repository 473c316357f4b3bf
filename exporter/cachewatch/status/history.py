"""A small in-memory history of the exposition, for the status page: the last hour, bounded.

The page needs rates over windows (hit rate over 5 minutes and an hour, a sparkline) without a
Prometheus next to it. Rather than asking every source for numbers, the history reads the
exposition's own families, so every source, present and future, shows up with no code of its
own: ``cachewatch_cache_lookups_total`` (hit rate per layer and cache), the
``cachewatch_cache_latency_seconds`` buckets (P99 where latency is measured) and the activity
families the sources declare as activity (``SourcePackage.activity``).

A sample is taken at most every ``interval`` seconds, from a scrape or from the page itself
(``observe``), or by ``run`` when nobody scrapes. Counters live in fixed-size arrays of doubles
(8 bytes a slot: an hour of one series at 10 s is 3 KB); latency buckets are kept once a minute.
Caches are capped: past ``max_caches`` new ones fold into ``other`` of their layer.
"""

from __future__ import annotations

import asyncio
import math
import time
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from ..metrics import contract
from ..metrics.cardinality import OTHER, LabelCap
from ..sources import activity

WINDOWS = (300.0, 3600.0)  # the page's two windows: 5 minutes and the hour
_LOOKUPS = contract.CACHE_LOOKUPS.family_name
_LATENCY_BUCKET = contract.CACHE_LATENCY.name + "_bucket"
_NAN = math.nan

Key = tuple[str, str, str, str]  # (kind, group, item, result): ("lookups", layer, cache, "hit")


@dataclass
class Snapshot:
    """The numbers the page needs from one exposition, summed over the labels it does not show
    (latency ``op``, pull ``tag``)."""

    counters: dict[Key, float] = field(default_factory=dict)
    latency: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, metrics: Iterable[Metric]) -> Snapshot:
        snapshot = cls()
        counters = snapshot.counters
        shown = activity()
        for metric in metrics:
            if metric.name == _LOOKUPS:
                for sample in metric.samples:
                    labels = sample.labels
                    key = ("lookups", labels["layer"], labels["cache"], labels["result"])
                    counters[key] = counters.get(key, 0.0) + sample.value
            elif metric.name == contract.CACHE_LATENCY.name:
                for sample in metric.samples:
                    if sample.name == _LATENCY_BUCKET:
                        labels = sample.labels
                        buckets = snapshot.latency.setdefault(
                            (labels["layer"], labels["cache"]), {})
                        buckets[labels["le"]] = buckets.get(labels["le"], 0.0) + sample.value
            elif (family := shown.get(metric.name)) is not None:
                for sample in metric.samples:
                    key = (family.kind, sample.labels[family.group], sample.labels[family.item],
                           "")
                    counters[key] = counters.get(key, 0.0) + sample.value
        return snapshot


class History:
    """The last ``horizon`` seconds of the snapshots, one every ``interval`` seconds."""

    def __init__(self, interval: float = 10.0, horizon: float = 3600.0,
                 max_caches: int = 200) -> None:
        self.interval = interval
        self._slots = int(horizon / interval) + 1
        self._times = array("d", [_NAN]) * self._slots
        self._head = -1  # slot of the newest sample
        self._series: dict[Key, array[float]] = {}
        self._cap = LabelCap(max_caches)
        self._latency: dict[tuple[str, str], deque[tuple[float, dict[str, float]]]] = {}
        self._latency_slots = int(horizon / 60) + 2
        self._last_latency = -math.inf

    # --- writing ------------------------------------------------------------------------------
    def due(self, now: float) -> bool:
        """Whether a sample taken now would be kept (one per ``interval``)."""
        return self._head < 0 or now - self._times[self._head] >= self.interval * 0.95

    def observe(self, metrics: Iterable[Metric], now: float | None = None) -> None:
        """Keep a sample of ``metrics`` if one is due; otherwise nothing (cheap: every scrape
        calls this)."""
        now = time.time() if now is None else now
        if self.due(now):
            self.record(self.fold(Snapshot.of(metrics)), now)

    def fold(self, snapshot: Snapshot) -> Snapshot:
        """Caches beyond the cap, summed into ``other`` of their layer (or activity group)."""
        folded = Snapshot()
        for (kind, group, item, result), value in snapshot.counters.items():
            key = (kind, group, self._admit(kind, group, item), result)
            folded.counters[key] = folded.counters.get(key, 0.0) + value
        for (layer, cache), buckets in snapshot.latency.items():
            target = folded.latency.setdefault((layer, self._admit("lookups", layer, cache)), {})
            for le, count in buckets.items():
                target[le] = target.get(le, 0.0) + count
        return folded

    def _admit(self, kind: str, group: str, item: str) -> str:
        return item if self._cap(f"{kind}\0{group}\0{item}") != OTHER else OTHER

    def record(self, snapshot: Snapshot, now: float) -> None:
        """Store a (folded) snapshot as the newest sample."""
        self._head = (self._head + 1) % self._slots
        head = self._head
        self._times[head] = now
        for key, series in list(self._series.items()):
            series[head] = snapshot.counters.get(key, _NAN)
            if head == 0 and all(map(math.isnan, series)):  # unseen for the whole horizon
                del self._series[key]
        for key, value in snapshot.counters.items():
            if key not in self._series:
                series = self._series[key] = array("d", [_NAN]) * self._slots
                series[head] = value
        if now - self._last_latency >= 60 * 0.95:
            self._last_latency = now
            for key, buckets in snapshot.latency.items():
                self._latency.setdefault(key, deque(maxlen=self._latency_slots)).append(
                    (now, dict(buckets)))

    async def run(self, collect: Callable[[], Awaitable[list[Metric]]]) -> None:
        """Take a sample every ``interval`` when scrapes do not (no Prometheus yet)."""
        while True:
            await asyncio.sleep(self.interval)
            if self.due(time.time()):
                self.observe(await collect())

    # --- reading ------------------------------------------------------------------------------
    def view(self) -> View:
        """The samples as they are now, ordered for lookups by time."""
        slots: list[int] = []
        if self._head >= 0:
            for step in range(self._slots):
                slot = (self._head - step) % self._slots
                if math.isnan(self._times[slot]):
                    break
                slots.append(slot)
        slots.reverse()
        return View(self, slots)


class View:
    """Read access to a history at one moment: values at times, increases over windows."""

    def __init__(self, history: History, slots: list[int]) -> None:
        self._history = history
        self._slots = slots  # oldest first
        self._times = [history._times[slot] for slot in slots]

    def value_at(self, key: Key, when: float) -> float | None:
        """The series' value at the newest sample taken at or before ``when``; ``None`` when the
        history does not reach back that far or the series did not exist then."""
        index = bisect_right(self._times, when) - 1
        series = self._history._series.get(key)
        if index < 0 or series is None:
            return None
        value = series[self._slots[index]]
        return None if math.isnan(value) else value

    def start_of(self, key: Key, when: float) -> float | None:
        """Where a counter's growth since ``when`` counts from: its value then; while the
        history is younger than that, its value in the first sample when it was already there
        (a server's lifetime counters, counts restored from state: what came before cachewatch
        started is not recent); ``None`` for a series born since, which counts from zero."""
        if self._times and when < self._times[0]:
            series = self._history._series.get(key)
            first = None if series is None else series[self._slots[0]]
            return None if first is None or math.isnan(first) else first
        return self.value_at(key, when)

    def increase(self, key: Key, now_value: float, window: float, now: float) -> float:
        """How much a counter grew over ``window``: while the history is younger than the
        window, over what it has seen (``start_of``); across a reset (a restarted server, a
        restarted application) from zero, as Prometheus' ``increase`` does."""
        start = self.start_of(key, now - window)
        if start is None or now_value < start:
            return now_value
        return now_value - start

    def per_second(self, key: Key, now_value: float, window: float, now: float
                   ) -> float | None:
        """How fast a counter grew over ``window``, or over what the history has seen while it
        is younger (from the first scrape on); ``None`` before any time has passed."""
        if not self._times:
            return None
        since = max(now - window, self._times[0])
        if now - since < 1.0:
            return None
        start = self.start_of(key, since)
        grown = now_value if start is None or now_value < start else now_value - start
        return grown / (now - since)

    def step(self, now: float) -> float:
        """The sparklines' resolution: 10 s while the history is younger than ten minutes,
        then a minute."""
        young = not self._times or now - self._times[0] < 600
        return min(self._history.interval, 10.0) if young else 60.0

    def minutes(self, key: Key, now_value: float, now: float, points: int = 60,
                step: float = 60.0) -> list[float | None]:
        """The counter's increase per ``step`` seconds (a minute) over the last ``points``
        steps, oldest first; ``None`` where the history has no sample."""
        out: list[float | None] = []
        for index in range(points, 0, -1):
            end = now - (index - 1) * step
            end_value = now_value if index == 1 else self.value_at(key, end)
            start_value = self.value_at(key, end - step)
            if start_value is None and self._times and self._times[0] < end:
                start_value = self.value_at(key, self._times[0])  # a step not yet full
            if end_value is None:
                out.append(None)
            elif start_value is None:  # the series appeared in this step: from zero
                out.append(end_value)
            else:
                out.append(end_value - start_value if end_value >= start_value else end_value)
        return out

    def latency_increase(self, key: tuple[str, str], now_buckets: dict[str, float],
                         window: float, now: float) -> dict[str, float]:
        """Bucket counts over ``window`` (or as seen so far), like ``increase`` per bucket."""
        start: dict[str, float] = {}
        for taken, buckets in reversed(self._history._latency.get(key, ())):
            if taken <= now - window:
                start = buckets
                break
        if any(now_buckets.get(le, 0.0) < count for le, count in start.items()):
            start = {}  # a reset
        return {le: count - start.get(le, 0.0) for le, count in now_buckets.items()}


def quantile(q: float, buckets: dict[str, float]) -> float | None:
    """``histogram_quantile`` over cumulative ``le -> count`` buckets; ``None`` when empty."""
    edges = sorted(((math.inf if le == "+Inf" else float(le)), count)
                   for le, count in buckets.items())
    if not edges or edges[-1][0] != math.inf or edges[-1][1] <= 0:
        return None
    rank = q * edges[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in edges:
        if count >= rank:
            if upper == math.inf:
                return lower  # beyond the last finite edge: its value, as Prometheus does
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return None
