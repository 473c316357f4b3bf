"""The overview dashboard: every layer's hit rate and latency, and cachewatch's own health."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..metrics import contract
from . import series
from .panels import NEUTRAL, DashboardSpec, Panel, fleet, hit_steps, latency_steps, legend
from .thresholds import Thresholds

UID = "cachewatch-overview"  # the core alerts link here


def variables(t: Thresholds) -> tuple[tuple[str, str], ...]:
    """Layer and cache, among the caches of the selected clusters, namespaces and jobs."""
    in_layer = fleet(t, 'layer=~"$layer"')
    return (
        ("layer", f"label_values({series.TOTAL}{fleet(t)}, layer)"),
        ("cache", f"label_values({series.TOTAL}{in_layer}, cache)"),
    )


Alerts = Callable[[Thresholds], list[dict[str, Any]]]


def panels(t: Thresholds, alerts: Alerts, targets: Sequence[str]) -> list[Panel]:
    """The overview's panels; the alerts-firing count names exactly the bundle's ``alerts``."""
    sel = fleet(t, 'layer=~"$layer"', 'cache=~"$cache"')
    names = "|".join(rule["alert"] for rule in alerts(t))
    firing = fleet(t, 'alertstate="firing"', f'alertname=~"{names}"')
    who = legend(t, "{{layer}} {{cache}}")
    return [
        Panel("timeseries", "Hit rate by layer and cache",
              ((f"{series.HIT_RATIO}{sel}", who),), "percentunit", hit_steps(t.hit_rate), 24,
              f"Share of lookups served from cache over 5 minutes, per cache; the line is the "
              f"{t.hit_rate:.0%} target CacheHitRateLow alerts below."),
        Panel("timeseries", "P99 latency (client-observed)",
              ((f"{series.P99}{sel}", who),), "s", latency_steps(t.p99_seconds), 12,
              f"99th percentile of lookup latency as clients see it (network included), over "
              f"5 minutes; the line is the {t.p99_seconds * 1000:g} ms target."),
        Panel("bargauge", "Worst hit rates now",
              ((f"bottomk(10, {series.HIT_RATIO}{sel})", who),), "percentunit",
              hit_steps(t.hit_rate), 12,
              "The ten caches with the lowest hit rate at the end of the time range."),
        Panel("stat", "cachewatch alerts firing",
              ((f"count(ALERTS{firing}) or vector(0)", "firing"),), "none",
              (("green", None), ("red", 1)), 6,
              "How many of the bundle's alerts fire now, for the selected fleet."),
        Panel("stat", "Exporters down",
              ((f"count(up{fleet(t, t.cachewatch_selector)} == 0) or vector(0)", "down"),),
              "none", (("green", None), ("red", 1)), 6,
              "cachewatch scrape targets Prometheus cannot scrape (CachewatchDown)."),
        Panel("stat", "Targets down",
              ((f"count({contract.COLLECTOR_UP.name}{fleet(t)} == 0) or vector(0)", "down"),),
              "none", (("green", None), ("red", 1)), 6,
              "Caches cachewatch cannot read (CachewatchTargetDown): "
              f"{', '.join(targets)}."),
        Panel("stat", "Lookups per second",
              ((f"sum({series.TOTAL}{sel})", "lookups/s"),), "reqps", NEUTRAL, 6,
              "Lookups per second over the selected caches, every layer."),
    ]


def dashboard(alerts: Alerts, targets: Sequence[str]) -> DashboardSpec:
    """The overview, counting ``alerts`` (the core's and every part's, which link back to this
    dashboard by its UID) among alerts firing, and naming the parts' ``targets`` where it
    counts those cachewatch cannot read."""
    return DashboardSpec("overview", UID, "cachewatch: cache efficiency overview",
                         lambda t: panels(t, alerts, targets), variables)
