"""What the status page holds each cache to: the thresholds the bundle's alerts are drawn at.

One place for both: the page reads the same thresholds models ``cachewatch bundle`` generates
the rules from (the core's ``Thresholds`` and the sources' own models), so a tile turns red at
the number an alert fires at. A layer with a hit-rate threshold of its own names that field
(``Layer.hit_rate_goal``, builds at 50 %); every other layer is held to the core's 85 %.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..bundle.thresholds import Thresholds
from ..sources import packages
from .settings import MIN_LOOKUPS


@dataclass(frozen=True)
class Goals:
    """The hit rate each layer should reach, the P99 no cache should pass, and the lookups a
    cache must have seen before it can be below goal."""

    hit_rate: float = Thresholds().hit_rate
    p99_seconds: float = Thresholds().p99_seconds
    min_lookups: int = MIN_LOOKUPS
    by_layer: dict[str, float] = field(default_factory=dict)

    def hit_rate_of(self, layer: str) -> float:
        """The hit ratio ``layer`` is held to."""
        return self.by_layer.get(layer, self.hit_rate)

    @classmethod
    def of(cls, thresholds: Thresholds | None = None, min_lookups: int = MIN_LOOKUPS) -> Goals:
        """The goals ``thresholds`` give (``serve --thresholds``, the file the bundle reads;
        the defaults when None), the core's and each source's own."""
        core = thresholds or Thresholds()
        by_layer = {}
        for source in packages():
            model = source.thresholds_model()
            for layer in source.layers:
                if layer.hit_rate_goal and model is not None:
                    by_layer[layer.name] = float(getattr(core.of(model), layer.hit_rate_goal))
        return cls(core.hit_rate, core.p99_seconds, min_lookups, by_layer)
