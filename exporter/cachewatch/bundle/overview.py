"""The overview dashboard: every layer's hit rate and latency, and cachewatch's own health."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from .. import contract
from . import series
from .panels import NEUTRAL, DashboardSpec, Panel, hit_steps, latency_steps
from .part import BundlePart
from .thresholds import Thresholds

UID = "cachewatch-overview"  # the core alerts link here
CORE_ALERT_PREFIXES = ("Cache", "Cachewatch")
VARIABLES = (
    ("layer", f"label_values({contract.CACHE_LOOKUPS.name}, layer)"),
    ("cache", f'label_values({contract.CACHE_LOOKUPS.name}{{layer=~"$layer"}}, cache)'),
)


def panels(t: Thresholds, alert_prefixes: Sequence[str]) -> list[Panel]:
    """The overview's panels; ``alert_prefixes`` are what the alerts-firing count matches."""
    sel = '{layer=~"$layer", cache=~"$cache"}'
    alert_names = "|".join(f"{prefix}.*" for prefix in alert_prefixes)
    return [
        Panel("timeseries", "Hit rate by layer and cache",
              ((f"{series.HIT_RATIO}{sel}", "{{layer}} {{cache}}"),), "percentunit",
              hit_steps(t.hit_rate), 24,
              f"Share of lookups served from cache; the line is the {t.hit_rate:.0%} target."),
        Panel("timeseries", "P99 latency (client-observed)",
              ((f"{series.P99}{sel}", "{{layer}} {{cache}}"),), "s",
              latency_steps(t.p99_seconds), 12,
              f"The line is the {t.p99_seconds * 1000:g} ms target."),
        Panel("bargauge", "Worst hit rates now",
              ((f"bottomk(10, {series.HIT_RATIO}{sel})", "{{layer}} {{cache}}"),),
              "percentunit", hit_steps(t.hit_rate), 12),
        Panel("stat", "cachewatch alerts firing",
              ((f'count(ALERTS{{alertstate="firing", alertname=~"{alert_names}"}}) '
                "or vector(0)", "firing"),), "none",
              (("green", None), ("red", 1)), 8),
        Panel("stat", "Targets down",
              ((f"count({contract.COLLECTOR_UP.name} == 0) or vector(0)", "down"),), "none",
              (("green", None), ("red", 1)), 8),
        Panel("stat", "Lookups per second",
              ((f"sum({series.TOTAL}{sel})", "lookups/s"),), "reqps", NEUTRAL, 8),
    ]


def dashboard(parts: Sequence[BundlePart]) -> DashboardSpec:
    """The overview, counting the alerts of the core and of every part among alerts firing."""
    prefixes = (*CORE_ALERT_PREFIXES, *(p.alert_prefix for p in parts if p.alert_prefix))
    return DashboardSpec("overview", UID, "cachewatch: cache efficiency overview",
                         partial(panels, alert_prefixes=prefixes), VARIABLES)
