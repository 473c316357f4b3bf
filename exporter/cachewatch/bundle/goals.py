"""Each layer's goal as its alerts judge it: the hit ratio they test, the ratio they fire below and
the traffic gate under which they say nothing. A source's bundle part declares its layers' goals
(``BundlePart.goals``); the overview's "Now" row counts, ranks and colours every cache against
them, so a dashboard never shows red where no alert would fire, nor green where one does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import series
from .thresholds import Thresholds

# (thresholds, fleet selector matchers) -> PromQL with identity, ``layer`` and ``cache`` labels.
Query = Callable[[Thresholds, str], str]


@dataclass(frozen=True)
class Goal:
    """One layer's hit-rate goal.

    ``ratio`` is the ratio the layer's hit-rate alert tests, one series per cache with the
    identity labels, ``layer`` and ``cache``; ``gate`` gives the caches with enough traffic for
    that alert to judge them (identity labels and ``cache``). Both take the fleet's matchers
    (``cluster=~"$cluster", ...``) to put on every selector. ``dashboard`` is the layer's
    dashboard uid and ``variable`` its variable that selects one cache ("" for none);
    ``panel`` and ``latency_panel`` title the panels there that draw the hit ratio and the P99
    the generic alerts test (where CacheHitRateLow and CacheLatencyP99High link to).
    ``lookups`` says whether ``ratio`` and ``gate`` read the shared lookups, whose series carry
    ``layer`` and ``cache`` (a layer judged on series of its own, named by ``variable``, does
    not): the overview then narrows them to its chosen layers and caches on their selectors.
    """

    layer: str
    hit_rate: float
    ratio: Query
    gate: Query
    dashboard: str
    variable: str = "cache"
    panel: str = ""
    latency_panel: str = ""
    lookups: bool = True

    def below(self, t: Thresholds, matchers: str) -> str:
        """The caches of this layer below goal, where traffic passes the alert's gate."""
        return (f"({self.ratio(t, matchers)} < {self.hit_rate}\n"
                f"and on ({t.by('cache')}) {self.gate(t, matchers)})")

    def gap(self, t: Thresholds, matchers: str) -> str:
        """Hit ratio minus goal (negative: below), where traffic passes the gate: what the
        overview ranks caches by."""
        return (f"({self.ratio(t, matchers)} - {self.hit_rate}\n"
                f"and on ({t.by('cache')}) {self.gate(t, matchers)})")


def _selector(matchers: str, *more: str) -> str:
    return "{" + ", ".join(m for m in (matchers, *more) if m) + "}"


def generic(t: Thresholds, layer: str, dashboard: str, variable: str = "cache",
            hit_rate: float | None = None, min_lookups: float | None = None,
            panel: str = "", latency_panel: str = "") -> Goal:
    """The goal of a layer judged on the shared hit ratio (CacheHitRateLow's, unless the layer's
    own alert tests the same ratio at ``hit_rate`` above ``min_lookups`` a second)."""
    gate = t.min_lookups_per_second if min_lookups is None else min_lookups
    own = f'layer="{layer}"'

    def ratio(_: Thresholds, matchers: str) -> str:
        return f"{series.HIT_RATIO}{_selector(matchers, own)}"

    def traffic(_: Thresholds, matchers: str) -> str:
        return f"{series.TOTAL}{_selector(matchers, own)} > {gate}"

    return Goal(layer, t.hit_rate if hit_rate is None else hit_rate, ratio, traffic, dashboard,
                variable, panel, latency_panel)
