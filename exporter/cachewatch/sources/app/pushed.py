"""What an application pushes to ``POST /api/v1/caches``: the push's models, validated.

Apart from the receiver (``push``) because pydantic builds a model's validators when the class
is made: they load with the first push or the OpenAPI document, not with the exporter.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ...metrics.labels import safe_label
from .contract import LATENCY_LE as _LE

MAX_COUNT = 2**53


def _exact(value: Any) -> Any:
    """Before float conversion: 2^53 + 1 would silently become 2^53."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > MAX_COUNT:
        raise ValueError(f"counters above 2^53 ({MAX_COUNT}) cannot be kept exactly as"
                         " Prometheus float64 samples; reset the counter or push deltas rebased")
    return value


# Cumulative counts: non-negative, finite, and exact in float64 (Prometheus' sample type).
Count = Annotated[float, Field(ge=0, allow_inf_nan=False), BeforeValidator(_exact)]
# Names from the client become label values (cache, app_instance) and stored keys.
Name = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(safe_label)]


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

    name: Name
    stats: CaffeineStats | None = Field(default=None, description="Caffeine CacheStats shape.")
    micrometer: MicrometerStats | None = Field(default=None, description="Micrometer shape.")
    size: Count | None = Field(default=None, description="Entries now (estimatedSize).")
    parent: Name | None = Field(
        default=None,
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

    instance: Name = Field(description="Reporting instance id.")
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
