"""In-process caches, pushed: ``POST /api/v1/caches`` in, ``layer="app"`` contract families out.

Apps push **cumulative** counters (Caffeine ``CacheStats`` or Micrometer shape) per instance.
The exporter turns them into per-cache totals the statsd_exporter way, by adding each
instance's increase since its previous push. So a restarted instance (its counters back near
zero) adds what it counted since the restart and never a negative amount, one instance going
backwards never pulls another down, and an instance that stops pushing can be forgotten (its
series go) without the per-cache counters ever decreasing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ... import contract
from ...cardinality import OTHER, LabelCap
from ...contract import Families, Layer
from ...receiving import guarded_body
from ...runtime import Runtime
from ...source import Source
from .settings import AppCacheSettings

log = logging.getLogger("cachewatch.app_caches")

REJECT_REASONS = ("auth", "too_large", "malformed", "cache_cap", "instance_cap")
Count = Annotated[float, Field(ge=0, le=2.0**63, allow_inf_nan=False)]
_LE = [*(repr(float(b)) for b in contract.LATENCY_BUCKETS), "+Inf"]
COUNTERS = ("hits", "misses", "load_success", "load_failure", "load_seconds", "evictions",
            "eviction_weight", "puts")


class CaffeineStats(BaseModel):
    """Caffeine's ``CacheStats``, as its getters name them; all cumulative."""

    model_config = ConfigDict(extra="forbid")

    hitCount: Count = 0
    missCount: Count = 0
    loadSuccessCount: Count = 0
    loadFailureCount: Count = 0
    totalLoadTime: Count = Field(default=0, description="Nanoseconds, as Caffeine reports it.")
    evictionCount: Count = 0
    evictionWeight: Count = 0


class MicrometerGets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hit: Count = 0
    miss: Count = 0


class MicrometerStats(BaseModel):
    """Micrometer's cache meters (``cache.gets{result}``, ``cache.puts``, ...); cumulative."""

    model_config = ConfigDict(extra="forbid")

    cache_gets: MicrometerGets = Field(default_factory=MicrometerGets)
    cache_puts: Count = 0
    cache_evictions: Count = 0
    cache_size: Count | None = None


class LatencyHistogram(BaseModel):
    """Cumulative latency histogram with cachewatch's bucket edges (``le`` -> count)."""

    model_config = ConfigDict(extra="forbid")

    op: str = Field(default="get", min_length=1, max_length=32, pattern=r"^[a-z_]+$")
    buckets: dict[str, Count] = Field(description=f"Exactly these le keys: {', '.join(_LE)}")
    sum: Count = Field(description="Sum of observed seconds.")

    @field_validator("buckets")
    @classmethod
    def _edges(cls, buckets: dict[str, float]) -> dict[str, float]:
        try:
            normal = {("+Inf" if k in ("+Inf", "inf", "Inf") else repr(float(k))): v
                      for k, v in buckets.items()}
        except ValueError:
            raise ValueError(f"bucket keys are le edges; expected {_LE}") from None
        if sorted(normal) != sorted(_LE):
            raise ValueError(f"bucket edges must be exactly {_LE}")
        counts = [normal[k] for k in _LE]
        if any(b < a for a, b in pairwise(counts)):
            raise ValueError("bucket counts must be cumulative (non-decreasing towards +Inf)")
        return normal


class PushedCache(BaseModel):
    """One cache of one instance."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    stats: CaffeineStats | None = Field(default=None, description="Caffeine CacheStats shape.")
    micrometer: MicrometerStats | None = Field(default=None, description="Micrometer shape.")
    size: Count | None = Field(default=None, description="Entries now (estimatedSize).")
    parent: str | None = Field(
        default=None, max_length=128,
        description="Name of the cache behind this one (L2) in the same push, as counted here.")
    parent_layer: str = Field(default="app", pattern=r"^[a-z_]{1,32}$",
                              description="Where the parent lives (app, redis, ...).")
    latency: list[LatencyHistogram] = Field(default_factory=list, max_length=8)

    @model_validator(mode="after")
    def _one_shape(self) -> PushedCache:
        if (self.stats is None) == (self.micrometer is None):
            raise ValueError("give exactly one of stats (Caffeine) or micrometer")
        if self.parent == self.name:
            raise ValueError("a cache cannot be its own parent")
        return self

    def counters(self) -> dict[str, float]:
        if self.stats is not None:
            s = self.stats
            return {"hits": s.hitCount, "misses": s.missCount,
                    "load_success": s.loadSuccessCount, "load_failure": s.loadFailureCount,
                    "load_seconds": s.totalLoadTime / 1e9, "evictions": s.evictionCount,
                    "eviction_weight": s.evictionWeight, "puts": 0.0}
        m = self.micrometer
        assert m is not None
        return {"hits": m.cache_gets.hit, "misses": m.cache_gets.miss, "load_success": 0.0,
                "load_failure": 0.0, "load_seconds": 0.0, "evictions": m.cache_evictions,
                "eviction_weight": 0.0, "puts": m.cache_puts}

    def entries(self) -> float | None:
        if self.size is not None:
            return self.size
        return self.micrometer.cache_size if self.micrometer is not None else None


class CachePush(BaseModel):
    """One push: every cache of one reporting instance, cumulative since it started."""

    model_config = ConfigDict(extra="forbid")

    instance: str = Field(min_length=1, max_length=128, description="Reporting instance id.")
    started_at: float | None = Field(
        default=None, ge=0, allow_inf_nan=False,
        description="Epoch seconds the instance started; lets a restarted exporter tell old "
        "counts (already exported before) from new ones.")
    caches: list[PushedCache] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _unique(self) -> CachePush:
        names = [c.name for c in self.caches]
        if len(set(names)) != len(names):
            raise ValueError("each cache name may appear once per push")
        return self


@dataclass
class _Seen:
    """What one instance last reported for one cache."""

    counters: dict[str, float]
    latency: dict[str, tuple[list[float], float]] = field(default_factory=dict)
    entries: float | None = None


@dataclass
class _Instance:
    last_push: float
    started_at: float | None = None
    caches: dict[str, _Seen] = field(default_factory=dict)


class AppCacheCollector(Source):
    """Accumulates pushed caches into monotonic per-cache totals; exports them."""

    name = "app"

    def __init__(self, settings: AppCacheSettings, clock: Any = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._names = LabelCap(settings.max_caches)
        self._instances: dict[str, _Instance] = {}
        # Expired instances' last counters: one that comes back after a pause continues from
        # them instead of having its whole cumulative count added again.
        self._expired: OrderedDict[str, _Instance] = OrderedDict()
        self._ops = LabelCap(16)
        self._totals: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(COUNTERS,
                                                                                      0.0))
        self._effective: dict[str, float] = defaultdict(float)
        self._resets: dict[str, int] = defaultdict(int)
        self._parents: dict[str, tuple[str, str]] = {}
        self._latency: dict[tuple[str, str], tuple[list[float], float]] = {}
        self._rejected = dict.fromkeys(REJECT_REASONS, 0)

    # --- accumulation -------------------------------------------------------------------------
    def push(self, body: CachePush) -> int:
        """Add one push; returns how many caches were counted (the rest hit the cap)."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            instance = self._instances.get(body.instance)
            if instance is None:
                if len(self._instances) >= self.settings.max_instances:
                    self._rejected["instance_cap"] += 1
                    raise OverflowError(
                        f"{len(self._instances)} instances already report (app.max_instances);"
                        " this one is refused until others expire")
                instance = self._expired.pop(body.instance, None) or _Instance(
                    now, body.started_at)
                self._instances[body.instance] = instance
            if body.started_at is not None and instance.started_at is not None \
                    and body.started_at != instance.started_at:
                self._resets_for(instance)  # a new start time: the instance restarted
            instance.started_at = body.started_at if body.started_at is not None \
                else instance.started_at
            instance.last_push = now
            # Counts from before a restart of this exporter were exported by the previous run.
            fresh = body.started_at is None or body.started_at >= self._started
            deltas: dict[str, dict[str, float]] = {}
            counted = 0
            for cache in body.caches:
                if cache.name not in instance.caches and \
                        len(instance.caches) >= self.settings.max_caches:
                    self._rejected["cache_cap"] += 1
                    continue
                label = self._names(cache.name)
                if label == OTHER and cache.name != OTHER:
                    self._rejected["cache_cap"] += 1
                deltas[cache.name] = self._add(instance, cache, label, fresh)
                counted += 1
            for cache in body.caches:  # L1 + L2 hits, from this same push: consistent
                if cache.name in deltas:
                    label = self._names(cache.name)
                    if cache.parent is not None:
                        self._parents[label] = (cache.parent, cache.parent_layer)
                        parent_hits = deltas.get(cache.parent, {}).get("hits", 0.0)
                        self._effective[label] += deltas[cache.name]["hits"] + parent_hits
        return counted

    def _resets_for(self, instance: _Instance) -> None:
        """Forget what a restarted instance reported: everything it sends now is new."""
        for name, seen in instance.caches.items():
            self._resets[self._names(name)] += 1
            seen.counters = dict.fromkeys(COUNTERS, 0.0)
            seen.latency = {}

    def _add(self, instance: _Instance, cache: PushedCache, label: str, fresh: bool
             ) -> dict[str, float]:
        current = cache.counters()
        seen = instance.caches.get(cache.name)
        if seen is None:
            previous = dict.fromkeys(COUNTERS, 0.0) if fresh else current
            seen = instance.caches[cache.name] = _Seen(previous)
        if any(current[k] < seen.counters[k] for k in COUNTERS):
            # Went backwards: the instance restarted. What it has counted since is all new.
            self._resets[label] += 1
            seen.counters = dict.fromkeys(COUNTERS, 0.0)
            seen.latency = {}
        deltas = {k: current[k] - seen.counters[k] for k in COUNTERS}
        totals = self._totals[label]
        for key, delta in deltas.items():
            totals[key] += delta
        seen.counters = current
        seen.entries = cache.entries()
        for histogram in cache.latency:
            histogram.op = self._ops(histogram.op)  # ops are few; a flood folds into other
            counts = [histogram.buckets[le] for le in _LE]
            before = seen.latency.get(histogram.op)
            if before is None:
                before = ([0.0] * len(_LE), 0.0) if fresh else (counts, histogram.sum)
            if any(c < b for c, b in zip(counts, before[0], strict=True)):
                before = ([0.0] * len(_LE), 0.0)
            stored, stored_sum = self._latency.get((label, histogram.op), ([0.0] * len(_LE), 0.0))
            self._latency[(label, histogram.op)] = (
                [s + c - b for s, c, b in zip(stored, counts, before[0], strict=True)],
                stored_sum + max(0.0, histogram.sum - before[1]))
            seen.latency[histogram.op] = (counts, histogram.sum)
        return deltas

    def _expire(self, now: float) -> None:
        cutoff = now - self.settings.instance_ttl
        for name in [n for n, i in self._instances.items() if i.last_push < cutoff]:
            self._expired[name] = self._instances.pop(name)
            while len(self._expired) > self.settings.max_instances:
                self._expired.popitem(last=False)
            log.info("instance expired", extra={"app_instance": name,
                                                "ttl_s": self.settings.instance_ttl})

    def reject(self, reason: str) -> None:
        with self._lock:
            self._rejected[reason] += 1

    # --- exposition ---------------------------------------------------------------------------
    def collect(self) -> Any:
        out = Families()
        with self._lock:
            self._expire(self._clock())
            for cache, totals in self._totals.items():
                core = {"layer": Layer.APP.value, "cache": cache}
                out.add(contract.CACHE_LOOKUPS, {**core, "result": "hit"}, totals["hits"])
                out.add(contract.CACHE_LOOKUPS, {**core, "result": "miss"}, totals["misses"])
                out.add(contract.CACHE_EVICTIONS, core, totals["evictions"])
                one = {"cache": cache}
                out.add(contract.APP_CACHE_LOADS, {**one, "result": "success"},
                        totals["load_success"])
                out.add(contract.APP_CACHE_LOADS, {**one, "result": "failure"},
                        totals["load_failure"])
                out.add(contract.APP_CACHE_LOAD_SECONDS, one, totals["load_seconds"])
                out.add(contract.APP_CACHE_EVICTION_WEIGHT, one, totals["eviction_weight"])
                out.add(contract.APP_CACHE_PUTS, one, totals["puts"])
                out.add(contract.APP_CACHE_RESETS, one, self._resets[cache])
            for cache, hits in self._effective.items():
                out.add(contract.CACHE_EFFECTIVE_HITS,
                        {"layer": Layer.APP.value, "cache": cache}, hits)
            for cache, (parent, layer) in self._parents.items():
                out.add(contract.APP_CACHE_PARENT,
                        {"cache": cache, "parent": parent, "parent_layer": layer}, 1)
            live: dict[str, int] = defaultdict(int)
            entries: dict[str, float] = defaultdict(float)
            for name, instance in sorted(self._instances.items()):
                for cache_name, seen in instance.caches.items():
                    label = self._names(cache_name)
                    live[label] += 1
                    if seen.entries is not None:
                        entries[label] += seen.entries
                    out.add(contract.APP_CACHE_LAST_PUSH,
                            {"cache": label, "app_instance": name}, instance.last_push)
            for cache in self._totals:
                out.add(contract.APP_CACHE_INSTANCES, {"cache": cache}, live.get(cache, 0))
                if cache in entries:
                    out.add(contract.CACHE_ENTRIES, {"layer": Layer.APP.value, "cache": cache},
                            entries[cache])
            for (cache, op), (counts, total) in sorted(self._latency.items()):
                out.add_histogram(contract.CACHE_LATENCY,
                                  {"layer": Layer.APP.value, "cache": cache, "op": op},
                                  list(zip(_LE, counts, strict=True)), total)
            for reason, count in self._rejected.items():
                out.add(contract.APP_PUSH_REJECTED, {"reason": reason}, count)
        yield from out

    # --- HTTP ---------------------------------------------------------------------------------
    def bearer_paths(self) -> tuple[str, ...]:
        return ("/api/v1/caches",) if self.settings.token else ()

    def router(self) -> APIRouter:
        router = APIRouter(tags=["application caches"])

        @router.post(
            "/api/v1/caches", status_code=202,
            summary="Push cumulative cache statistics of one instance",
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": CachePush.model_json_schema()}}}},
            responses={400: {"description": "Malformed JSON"},
                       401: {"description": "Missing or wrong bearer token"},
                       413: {"description": "Body over app.max_body_bytes"},
                       422: {"description": "A field is wrong; the message names it"},
                       429: {"description": "app.max_instances reached"}},
        )
        async def push(request: Request) -> JSONResponse:
            """Counters are cumulative since the instance started; see the README."""
            return await self._receive(request)

        return router

    async def _receive(self, request: Request) -> JSONResponse:
        body = await guarded_body(request, self.settings.token, self.settings.max_body_bytes,
                                  "app", self.reject)
        if isinstance(body, JSONResponse):
            return body
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
            counted = self.push(push)
        except OverflowError as exc:
            return JSONResponse({"error": str(exc)}, status_code=429,
                                headers={"Retry-After": str(int(self.settings.instance_ttl))})
        return JSONResponse({"accepted": counted, "instance": push.instance}, status_code=202)


def build(section: AppCacheSettings, runtime: Runtime) -> AppCacheCollector:
    """Pushed caches have no target to read: nothing for /readyz to wait on."""
    return AppCacheCollector(section)
