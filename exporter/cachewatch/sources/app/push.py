"""In-process caches, pushed: ``POST /api/v1/caches`` in, ``layer="app"`` contract families out.

Apps push **cumulative** counters (Caffeine ``CacheStats`` or Micrometer shape) per instance.
The exporter turns them into per-cache totals the statsd_exporter way, by adding each
instance's increase since its previous push; its last values are kept in the state store, so a
restart of the exporter neither drops nor repeats an increase. So a restarted instance (its
counters back near zero) adds what it counted since the restart and never a negative amount,
one instance going backwards never pulls another down, and an instance that stops pushing can
be forgotten (its series go) without the per-cache counters ever decreasing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ...metrics.cardinality import OTHER, LabelCap
from ...metrics.contract import Families
from ...receiving import body_schema, guarded_body
from ...runtime import Runtime
from ...source import Source
from ...state import Change, Counts, Key, Ledger, StateError, Update
from . import contract
from .settings import AppCacheSettings

if TYPE_CHECKING:  # the push's models load with the first push, or the OpenAPI document
    from .pushed import CachePush, PushedCache

log = logging.getLogger("cachewatch.app_caches")

REJECT_REASONS = ("auth", "too_large", "malformed", "cache_cap", "instance_cap")


# Latency histograms kept with their own (cache, op) labels; more fold into (other, other).
MAX_HISTOGRAMS = 64
MAX_EXPIRED = 20  # expired instances the status page lists
_LE = contract.LATENCY_LE
COUNTERS = ("hits", "misses", "load_success", "load_failure", "load_seconds", "evictions",
            "eviction_weight", "puts")


@dataclass
class Labels:
    """The label values of one push's names, as the caps made them."""

    names: dict[str, str]
    histograms: dict[tuple[str, str], tuple[str, str]]


@dataclass
class _Live:
    """What this replica knows of an instance that pushed lately (gauges, not counts)."""

    last_push: float
    entries: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    """Per pushed cache name: its label (as capped at the push) and its size."""


def accumulate(body: CachePush, labels: Labels, max_caches: int,
               stored: dict[str, Any] | None) -> tuple[dict[str, Any], Counts, int]:
    """One push against the instance's stored last values: ``(record, increments, counted)``.

    Pure, so the store may run it again on a concurrent change. An instance the store has never
    seen is counted in full, whatever its ``started_at``; one it knows continues from its last
    values; a new ``started_at`` or a counter going backwards means the instance restarted, and
    what it counted since is all new.
    """
    record = stored if stored is not None else {"started_at": body.started_at, "caches": {}}
    caches: dict[str, Any] = record["caches"]
    counts: Counts = defaultdict(float)
    restarted = body.started_at is not None and record["started_at"] is not None \
        and body.started_at != record["started_at"]
    if restarted:
        for name in caches:
            counts[(RESETS, labels.names.get(name) or name)] += 1
            caches[name] = {"c": [0.0] * len(COUNTERS), "l": {}}
    if body.started_at is not None:
        record["started_at"] = body.started_at
    hits: dict[str, float] = {}
    counted = 0
    for cache in body.caches:
        if cache.name not in caches and len(caches) >= max_caches:
            counts[(REJECTED, "cache_cap")] += 1
            continue
        label = labels.names[cache.name]
        if label == OTHER and cache.name != OTHER:
            counts[(REJECTED, "cache_cap")] += 1
        seen = caches.setdefault(cache.name, {"c": [0.0] * len(COUNTERS), "l": {}})
        hits[cache.name] = _add(seen, cache, label, counts, labels.histograms)
        counted += 1
    for cache in body.caches:  # L1 + L2 hits, from this same push: consistent
        if cache.name in hits and cache.parent is not None:
            counts[(EFFECTIVE, contract.LAYER, labels.names[cache.name])] += \
                hits[cache.name] + hits.get(cache.parent, 0.0)
    return record, dict(counts), counted


def _add(seen: dict[str, Any], cache: PushedCache, label: str, counts: Counts,
         histograms: dict[tuple[str, str], tuple[str, str]]) -> float:
    """Add one cache's increase since ``seen`` to ``counts``; returns its new hits. Last
    values are kept per pushed name and op, increases added to the (possibly folded) labels:
    two names or ops folded into ``other`` add up instead of undoing each other."""
    current = cache.counters()
    before = dict(zip(COUNTERS, seen["c"], strict=True))
    counts[(RESETS, label)] += 0.0
    if any(current[k] < before[k] for k in COUNTERS):
        counts[(RESETS, label)] += 1  # went backwards: restarted; all it counted since is new
        before = dict.fromkeys(COUNTERS, 0.0)
        seen["l"] = {}
    for name, delta in ((k, current[k] - before[k]) for k in COUNTERS):
        counts[_SERIES[name](label)] += delta
    seen["c"] = [current[k] for k in COUNTERS]
    for histogram in cache.latency:
        now = [histogram.buckets[le] for le in _LE]
        was = seen["l"].get(histogram.op, [0.0] * (len(_LE) + 1))
        if any(c < b for c, b in zip(now, was, strict=False)):
            was = [0.0] * (len(_LE) + 1)
        cache_label, op = histograms[(cache.name, histogram.op)]
        for le, c, b in zip(_LE, now, was, strict=False):
            counts[(LATENCY_BUCKET, cache_label, op, le)] += c - b
        counts[(LATENCY_SUM, cache_label, op)] += max(0.0, histogram.sum - was[-1])
        seen["l"][histogram.op] = [*now, histogram.sum]
    return current["hits"] - before["hits"]


class AppCacheCollector(Source):
    """Accumulates pushed caches into monotonic per-cache totals in the state store."""

    name = "app"

    def __init__(self, settings: AppCacheSettings, ledger: Ledger,
                 clock: Any = time.time) -> None:
        self.settings = settings
        self.ledger = ledger
        self._clock = clock
        self._lock = threading.Lock()
        self._names = LabelCap(settings.max_caches)
        self._ops = LabelCap(16)
        self._histograms = LabelCap(MAX_HISTOGRAMS)  # "cache op" pairs: each is ~15 series
        for key, _ in ledger.items():  # restored series keep their own labels after a restart
            if key[0] == LOOKUPS:
                self._names(key[2])
            elif key[0] == LATENCY_SUM and key[1:3] != (OTHER, OTHER):
                self._ops(key[2])
                self._histograms(f"{key[1]} {key[2]}")
        self._live: dict[str, _Live] = {}
        self._parents: dict[str, tuple[str, str]] = {}
        # Instances that expired -> when, the latest MAX_EXPIRED: the status page says so.
        self.expired: OrderedDict[str, float] = OrderedDict()

    # --- accumulation -------------------------------------------------------------------------
    async def push(self, body: CachePush) -> int:
        """Add one push once stored; returns how many caches were counted (the rest hit the
        cap). Raises ``OverflowError`` past ``app.max_instances``, ``StateError``."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            if body.instance not in self._live and \
                    len(self._live) >= self.settings.max_instances:
                self.reject("instance_cap")
                raise OverflowError(
                    f"{len(self._live)} instances already report (app.max_instances);"
                    " this one is refused until others expire")
        labels = self._label(body)
        outcome = await self.ledger.record([], Update(
            body.instance, partial(accumulate, body, labels, self.settings.max_caches),
            keep_for=self.settings.forget_after,
            keep_at_most=FORGOTTEN_PER_LIVE * self.settings.max_instances))
        with self._lock:
            live = self._live.setdefault(body.instance, _Live(now))
            live.last_push = now
            self.expired.pop(body.instance, None)  # back again
            for cache in body.caches:
                if cache.name in live.entries or len(live.entries) < self.settings.max_caches:
                    live.entries[cache.name] = (labels.names[cache.name], cache.entries())
                label = labels.names[cache.name]
                if cache.parent is not None and label != OTHER:
                    self._parents[label] = (cache.parent, cache.parent_layer)
        return int(outcome.value)

    def _label(self, body: CachePush) -> Labels:
        """Cap the push's cache names and latency (cache, op) pairs; names are already safe."""
        names = {cache.name: self._names(cache.name) for cache in body.caches}
        histograms: dict[tuple[str, str], tuple[str, str]] = {}
        for cache in body.caches:
            for histogram in cache.latency:
                pair = (names[cache.name], self._ops(histogram.op))
                if OTHER in pair or self._histograms(" ".join(pair)) == OTHER:
                    pair = (OTHER, OTHER)
                histograms[(cache.name, histogram.op)] = pair
        return Labels(names, histograms)

    def _expire(self, now: float) -> None:
        cutoff = now - self.settings.instance_ttl
        for name in [n for n, i in self._live.items() if i.last_push < cutoff]:
            del self._live[name]
            self.expired.pop(name, None)
            self.expired[name] = now
            while len(self.expired) > MAX_EXPIRED:
                self.expired.popitem(last=False)
            log.info("instance expired", extra={"app_instance": name,
                                                "ttl_s": self.settings.instance_ttl})

    def reject(self, reason: str) -> None:
        self.ledger.record_later([Change({(REJECTED, reason): 1.0})])

    # --- exposition ---------------------------------------------------------------------------
    def collect(self) -> Any:
        out = Families()
        stored = dict(sorted(self.ledger.items()))
        caches = sorted({key[2] for key in stored if key[0] == LOOKUPS})
        latency: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        for key, value in stored.items():
            name = key[0]
            if name == LATENCY_BUCKET:
                latency[key[1:3]][key[3]] = value
            elif name == LATENCY_SUM:
                latency[key[1:3]]["sum"] = value
            elif name != REJECTED:
                spec = contract.SPECS[name]
                out.add(spec, dict(zip(spec.labels, key[1:], strict=True)), value)
        with self._lock:
            self._expire(self._clock())
            for cache, (parent, layer) in self._parents.items():
                out.add(contract.APP_CACHE_PARENT,
                        {"cache": cache, "parent": parent, "parent_layer": layer}, 1)
            live: dict[str, set[str]] = defaultdict(set)
            entries: dict[str, float] = defaultdict(float)
            for name, instance in sorted(self._live.items()):
                for label, size in instance.entries.values():
                    live[label].add(name)  # names folded into other: one instance, once
                    if size is not None:
                        entries[label] += size
                out.add(contract.APP_CACHE_LAST_PUSH, {"app_instance": name},
                        instance.last_push)
        for cache in caches:
            out.add(contract.APP_CACHE_INSTANCES, {"cache": cache}, len(live.get(cache, ())))
            if cache in entries:
                out.add(contract.CACHE_ENTRIES, {"layer": contract.LAYER, "cache": cache},
                        entries[cache])
        for (cache, op), buckets in sorted(latency.items()):
            out.add_histogram(contract.CACHE_LATENCY,
                              {"layer": contract.LAYER, "cache": cache, "op": op},
                              [(le, buckets.get(le, 0.0)) for le in _LE], buckets.get("sum", 0.0))
        for reason in REJECT_REASONS:
            out.add(contract.APP_PUSH_REJECTED, {"reason": reason},
                    stored.get((REJECTED, reason), 0.0))
        yield from out

    # --- HTTP ---------------------------------------------------------------------------------
    def bearer_paths(self) -> tuple[str, ...]:
        return ("/api/v1/caches",) if self.settings.token else ()

    def router(self) -> APIRouter:
        from .pushed import CachePush

        router = APIRouter(tags=["application caches"])

        @router.post(
            "/api/v1/caches", status_code=202,
            summary="Push cumulative cache statistics of one instance",
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": body_schema(CachePush)}}}},
            responses={400: {"description": "Malformed JSON"},
                       401: {"description": "Missing or wrong bearer token"},
                       413: {"description": "Body over app.max_body_bytes"},
                       422: {"description": "A field is wrong; the message names it"},
                       429: {"description": "app.max_instances reached"}},
        )
        async def push(request: Request) -> JSONResponse:
            """Counters are cumulative since the instance started (docs: Application caches)."""
            return await self._receive(request)

        return router

    async def _receive(self, request: Request) -> JSONResponse:
        body = await guarded_body(request, self.settings.token, self.settings.max_body_bytes,
                                  "app", self.reject)
        if isinstance(body, JSONResponse):
            return body
        from .pushed import CachePush

        try:
            push = CachePush.model_validate_json(body)
        except ValidationError as exc:
            self.reject("malformed")
            errors = exc.errors(include_url=False)
            status = 400 if errors and errors[0]["type"] == "json_invalid" else 422
            return JSONResponse({"error": "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in errors[:5])}, status_code=status)
        try:
            counted = await self.push(push)
        except OverflowError as exc:
            return JSONResponse({"error": str(exc)}, status_code=429,
                                headers={"Retry-After": str(int(self.settings.instance_ttl))})
        except StateError as exc:
            return JSONResponse({"error": f"push not stored, retry: {exc}"}, status_code=503,
                                headers={"Retry-After": "1"})
        return JSONResponse({"accepted": counted, "instance": push.instance}, status_code=202)


LOOKUPS = contract.CACHE_LOOKUPS.name
RESETS = contract.APP_CACHE_RESETS.name
REJECTED = contract.APP_PUSH_REJECTED.name
EFFECTIVE = contract.CACHE_EFFECTIVE_HITS.name
LATENCY_BUCKET = contract.CACHE_LATENCY.name + "_bucket"
LATENCY_SUM = contract.CACHE_LATENCY.name + "_sum"
_APP = contract.LAYER
# Where each pushed counter is kept: the series key for a cache label.
_SERIES: dict[str, Callable[[str], Key]] = {
    "hits": lambda c: (LOOKUPS, _APP, c, "hit"),
    "misses": lambda c: (LOOKUPS, _APP, c, "miss"),
    "evictions": lambda c: (contract.CACHE_EVICTIONS.name, _APP, c),
    "load_success": lambda c: (contract.APP_CACHE_LOADS.name, c, "success"),
    "load_failure": lambda c: (contract.APP_CACHE_LOADS.name, c, "failure"),
    "load_seconds": lambda c: (contract.APP_CACHE_LOAD_SECONDS.name, c),
    "eviction_weight": lambda c: (contract.APP_CACHE_EVICTION_WEIGHT.name, c),
    "puts": lambda c: (contract.APP_CACHE_PUTS.name, c),
}


# Silent instances whose last values are kept, per instance allowed at once: a flood of new
# instance names cannot fill the store for app.forget_after.
FORGOTTEN_PER_LIVE = 10


def build(section: AppCacheSettings, runtime: Runtime) -> AppCacheCollector:
    """The push API, counting into the runtime's state store."""
    return AppCacheCollector(section, runtime.state.ledger("app"))
