"""The overview dashboard: the "Now" row first (which cache is below goal, where to click), then
one row of charts per layer drawn at that layer's goal, latency, and cachewatch's own health:
a panel for the number each health alert tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..metrics import contract
from . import now, series
from .goals import Goal
from .panels import NEUTRAL, DashboardSpec, Panel, fleet, hit_steps, latency_steps, legend
from .part import Rejections
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
Goals = Callable[[Thresholds], Sequence[Goal]]


def row(title: str) -> Panel:
    """A collapsible row heading the panels after it."""
    return Panel("row", title, (), "none", NEUTRAL, 24, title, height=1)


def layer_charts(t: Thresholds, goal: Goal) -> list[Panel]:
    """A layer's hit rate as its alert tests it, drawn at its goal, and its lookups."""
    who = legend(t, "{{cache}}")
    lookups = fleet(t, now.CHOSEN, f'layer="{goal.layer}"')
    return [
        row(f"Layer {goal.layer}"),
        Panel("timeseries", f"{goal.layer}: hit rate", ((now.chosen(t, goal, goal.ratio), who),),
              "percentunit", hit_steps(goal.hit_rate), 12,
              f"The hit ratio the {goal.layer} alert tests, per cache; the line is its "
              f"{goal.hit_rate:.0%} goal."),
        Panel("timeseries", f"{goal.layer}: lookups per second",
              ((f"{series.TOTAL}{lookups}", who),),
              "reqps", NEUTRAL, 12, "Lookups per second per cache (5-minute rate)."),
    ]


def health(t: Thresholds, refused: Sequence[Rejections]) -> list[Panel]:
    """The number each health alert tests, per what it fires on."""
    up = "up" + fleet(t, t.cachewatch_selector)
    by = t.by("collector", "target", "reason")
    errors = contract.COLLECTOR_ERRORS.name
    window = f"[{t.rejected_window}]"
    return [
        row("cachewatch health"),
        Panel("timeseries", "State store up", (
            (f"min by ({t.by('instance')}) ({contract.STATE_UP.name}{fleet(t)})",
             legend(t, "{{instance}}")),), "none", (("red", None), ("green", 1.0)), 6,
              "1: the state store takes what is received; 0 for 2 minutes fires "
              "CachewatchStateDown (critical)."),
        Panel("timeseries", f"Collector errors ({t.errors_window})", (
            (f"sum by ({by}) (increase({errors}{fleet(t)}[{t.errors_window}]))",
             legend(t, "{{collector}} {{target}} {{reason}}")),), "none",
              (("green", None), ("red", float(t.max_errors))), 6,
              f"Errors per collector and target over {t.errors_window}; above "
              f"{t.max_errors} for {t.errors_for} fires CachewatchCollectorFailing."),
        Panel("timeseries", f"Refusals per endpoint ({t.rejected_window})", tuple(
            (f"sum by ({t.by('reason')}) (increase({r.metric}{fleet(t, 'reason!=' + chr(34)*2)}"
             f"{window}))", legend(t, f"{r.endpoint} {{{{reason}}}}")) for r in refused),
              "none", (("green", None), ("red", 1.0)), 6,
              f"Requests each receiver refused over {t.rejected_window}, by reason; refusals "
              f"lasting {t.rejected_for} fire CachewatchWebhooksRejected.",
              no_data="No refusals: every receiver took what it was sent"),
        Panel("timeseries", "Exporters up per instance",
              ((f"{up}", legend(t, "{{instance}}")),), "none",
              (("red", None), ("green", 1.0)), 6,
              "Prometheus' `up` of each cachewatch: 0 fires CachewatchDown; no series at all "
              "fires CachewatchAbsent.",
              no_data="No cachewatch target is scraped (CachewatchAbsent)"),
        Panel("timeseries", "Targets cachewatch reads",
              ((f"{contract.COLLECTOR_UP.name}{fleet(t)}",
                legend(t, "{{collector}} {{target}}")),), "none",
              (("red", None), ("green", 1.0)), 24,
              "1 per target read, 0 for a target cachewatch cannot read (CachewatchTargetDown)."),
    ]


def firing(t: Thresholds, alerts: Alerts) -> str:
    """The bundle's alerts firing for the selected fleet, as the Now row counts them."""
    names = "|".join(rule["alert"] for rule in alerts(t))
    return fleet(t, 'alertstate="firing"', f'alertname=~"{names}"')


def panels(t: Thresholds, alerts: Alerts, goals: Goals, refused: Sequence[Rejections],
           targets: Sequence[str]) -> list[Panel]:
    """The overview's panels; the alerts-firing count names exactly the bundle's ``alerts``."""
    sel = fleet(t, 'layer=~"$layer"', 'cache=~"$cache"')
    return [
        *now.panels(t, goals(t), firing(t, alerts), targets),
        *(panel for goal in goals(t) for panel in layer_charts(t, goal)),
        row("Latency"),
        Panel("timeseries", "P99 latency (client-observed)",
              ((f"{series.P99}{sel}", legend(t, "{{layer}} {{cache}}")),), "s",
              latency_steps(t.p99_seconds), 24,
              f"99th percentile of lookup latency as clients see it (network included), over "
              f"5 minutes; the line is the {t.p99_seconds * 1000:g} ms CacheLatencyP99High "
              "goal."),
        *health(t, refused),
    ]


def dashboard(alerts: Alerts, goals: Goals, refused: Sequence[Rejections],
              targets: Sequence[str]) -> DashboardSpec:
    """The overview, counting ``alerts`` (the core's and every part's) among alerts firing,
    judging caches by the parts' ``goals``, showing the receivers' ``refused`` counters and
    naming the parts' ``targets`` where it counts those cachewatch cannot read."""
    return DashboardSpec("overview", UID, "cachewatch: cache efficiency overview",
                         lambda t: panels(t, alerts, goals, refused, targets), variables,
                         alert_annotation=lambda t: f"ALERTS{firing(t, alerts)}")
