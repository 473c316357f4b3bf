"""The first row of every layer dashboard: the layer's goal numbers before its volumes.

A reader opening a layer's dashboard first sees whether its caches meet their goals: each
cache's hit rate coloured against the goal its layer declares (``goals.Goal``, the alert's),
how many caches are below it where traffic passes the alert's gate, and, where the layer's
latency is measured, each cache's P99 against CacheLatencyP99High's line. The core adds the
row to the dashboard each goal names, so a new source's dashboard opens the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from . import series
from .goals import Goal
from .panels import RED_FROM_ONE, Panel, fleet, hit_steps, latency_steps, legend
from .thresholds import Thresholds

HEIGHT = 5


def _chosen(t: Thresholds, goal: Goal) -> str:
    """The fleet's matchers and the dashboard's cache variable, without braces."""
    own = (f'{goal.variable}=~"${goal.variable}"',) if goal.variable else ()
    return fleet(t, *own)[1:-1]


def _goal_panels(t: Thresholds, goal: Goal) -> list[Panel]:
    """One layer's goal numbers, each panel at width 0 until ``panels`` spreads them."""
    matchers, name = _chosen(t, goal), goal.layer
    found = [
        Panel("stat", f"{name}: hit rate now", ((goal.ratio(t, matchers),
                                                 legend(t, "{{cache}}")),),
              "percentunit", hit_steps(goal.hit_rate), 0,
              f"Each cache's hit ratio as the {name} alert tests it; red below its "
              f"{goal.hit_rate:.0%} goal.", height=HEIGHT),
        Panel("stat", f"{name}: caches below goal",
              ((f"count({goal.below(t, matchers)}) or vector(0)", "below goal"),),
              "none", RED_FROM_ONE, 0,
              f"Caches under the {goal.hit_rate:.0%} goal with enough traffic for the {name} "
              "alert to judge them.", height=HEIGHT),
    ]
    if goal.latency_panel:  # measured: the layer feeds the shared latency histogram
        selector = "{" + matchers + f', layer="{name}"' + "}"
        found.append(Panel(
            "stat", f"{name}: P99 now", ((f"{series.P99}{selector}", legend(t, "{{cache}}")),),
            "s", latency_steps(t.p99_seconds), 0,
            f"Each cache's client-observed P99 over 5 minutes; red above the "
            f"{t.p99_seconds * 1000:g} ms CacheLatencyP99High goal.", height=HEIGHT))
    return found


def panels(t: Thresholds, goals: Sequence[Goal]) -> list[Panel]:
    """The goal numbers of ``goals`` (the layers one dashboard shows), side by side across the
    grid's first line."""
    found = [panel for goal in goals for panel in _goal_panels(t, goal)]
    if not found:
        return []
    width, wider = divmod(24, len(found))
    return [replace(panel, width=width + (i < wider)) for i, panel in enumerate(found)]
