"""The overview's "Now" row: which cache is below its goal right now, and where to click.

Counts and the table judge each cache against its layer's goal (``goals.Goal``), as the alerts
do: a cache whose traffic is under the alert's gate is neither counted nor ranked below goal.
Like every panel of the overview, they keep to the layers and caches chosen in its variables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..metrics import contract
from . import series
from .goals import Goal, Query
from .panels import NEUTRAL, RED_FROM_ONE, Panel, fleet
from .thresholds import Thresholds

# The overview's own variables, on every selector of a series that carries their labels.
CHOSEN = 'layer=~"$layer", cache=~"$cache"'


def identity(t: Thresholds) -> str:
    """The fleet's matchers, without braces."""
    return fleet(t)[1:-1]


def chosen(t: Thresholds, goal: Goal, query: Query) -> str:
    """``query`` (one of ``goal``'s) for the chosen fleet, layers and caches: the layer and
    cache matchers go on its own selectors where its series carry those labels; otherwise the
    result is kept where the shared lookups of the same cache are chosen."""
    ids = identity(t)
    if goal.lookups:
        return query(t, f"{ids}, {CHOSEN}")
    return (f"({query(t, ids)})\n"
            f"and on ({t.by('layer', 'cache')}) {series.TOTAL}{{{ids}, {CHOSEN}}}")


def _tag(goal: Goal, expr: str) -> str:
    """``expr`` with the layer dashboard's uid and cache variable as labels: the table's link
    reads them from the row."""
    return (f'label_replace(label_replace({expr}, "dashboard", "{goal.dashboard}", "", ""), '
            f'"variable", "{goal.variable}", "", "")')


def _each(goals: Sequence[Goal], column: Any) -> str:
    return "\nor\n".join(_tag(goal, column(goal)) for goal in goals)


def _link(t: Thresholds) -> dict[str, Any]:
    """The layer's dashboard with the row's identity labels and cache as its variables."""
    chosen = "".join(f"&var-{label}=${{__data.fields.{label}}}" for label in t.identity_labels)
    return {"title": "Open ${__data.fields.cache} on its layer's dashboard",
            "url": "/d/${__data.fields.dashboard}?${__url_time_range}" + chosen
                   + "&var-${__data.fields.variable}=${__data.fields.cache}"}


def _override(name: str, **properties: Any) -> dict[str, Any]:
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": key, "value": value} for key, value in properties.items()]}


def _table_extra(t: Thresholds) -> dict[str, Any]:
    """Merged on labels, tidied (no Time column, named columns), worst first, coloured."""
    order = ["layer", "cache", "Hit rate", "vs goal", "P99", "Lookups/s", *t.identity_labels]
    return {
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True},
                "indexByName": {name: i for i, name in enumerate(order)},
                "renameByName": {"Value #A": "vs goal", "Value #B": "Hit rate",
                                 "Value #C": "P99", "Value #D": "Lookups/s"}}},
            {"id": "sortBy", "options": {"sort": [{"field": "vs goal", "desc": False}]}},
        ],
        "fieldConfig": {"overrides": [
            _override("vs goal", **{
                "custom.cellOptions": {"type": "color-background"},
                "thresholds": {"mode": "absolute", "steps": [
                    {"color": "red", "value": None}, {"color": "green", "value": 0}]}}),
            _override("Hit rate", unit="percentunit"),
            _override("P99", unit="s", **{
                "custom.cellOptions": {"type": "color-text"},
                "thresholds": {"mode": "absolute", "steps": [
                    {"color": "green", "value": None},
                    {"color": "red", "value": t.p99_seconds}]}}),
            _override("Lookups/s", unit="reqps"),
            _override("dashboard", **{"custom.hidden": True}),
            _override("variable", **{"custom.hidden": True}),
            _override("cache", links=[_link(t)]),
        ]},
        "options": {"showHeader": True, "cellHeight": "sm"},
    }


def panels(t: Thresholds, goals: Sequence[Goal], firing: str,
           targets: Sequence[str]) -> list[Panel]:
    """Stats (below goal, over P99 goal, alerts firing, exporters up, targets down) and the
    table of every cache; ``firing`` is the alerts-firing selector, ``targets`` what the
    collectors read."""
    ids = f"{identity(t)}, {CHOSEN}"
    below = "\nor\n".join(chosen(t, goal, goal.below) for goal in goals)
    by = t.by("layer", "cache")
    slow = (f"{series.P99}{{{ids}}} > {t.p99_seconds}\n"
            f"and on ({by}) {series.OBSERVATIONS}{{{ids}}} "
            f"> {t.min_latency_observations_per_second}")
    up = "up" + fleet(t, t.cachewatch_selector)

    def stat(title: str, exprs: tuple[tuple[str, str], ...], width: int, text: str) -> Panel:
        return Panel("stat", title, exprs, "none", RED_FROM_ONE, width, text, height=4)

    def layer(goal: Goal, expr: str) -> str:
        return expr.replace("{" + ids, "{" + ids + f', layer="{goal.layer}"', 1)

    return [
        Panel("row", "Now", (), "none", NEUTRAL, 24, "Which cache is below goal now.", height=1),
        stat("Caches below hit-rate goal", ((f"count({below}) or vector(0)", "below goal"),),
             5, "Caches under their layer's hit-rate goal with enough traffic for its alert to "
             "judge them (the same test as the hit-rate alerts)."),
        stat("Caches over P99 goal", ((f"count({slow}) or vector(0)", "over goal"),), 5,
             f"Caches whose P99 is above {t.p99_seconds * 1000:g} ms with enough lookups "
             "for CacheLatencyP99High to judge them."),
        stat("Alerts firing", ((f"count(ALERTS{firing}) or vector(0)", "firing"),), 5,
             "How many of the bundle's alerts fire now, for the selected fleet."),
        Panel("stat", "Exporters up", (
            (f"count({up} == 1) or vector(0)", "up"), (f"count({up}) or vector(0)", "total")),
            "none", NEUTRAL, 5, "cachewatch scrape targets Prometheus reads, of all it has "
            "(CachewatchDown, CachewatchAbsent).", height=4),
        stat("Targets down", ((f"count({contract.COLLECTOR_UP.name}{fleet(t)} == 0) "
                               "or vector(0)", "down"),), 4,
             f"Caches cachewatch cannot read (CachewatchTargetDown): {', '.join(targets)}."),
        Panel("table", "Every cache, worst first", (
            (_each(goals, lambda g: chosen(t, g, g.gap)), ""),
            (_each(goals, lambda g: chosen(t, g, g.ratio)), ""),
            (_each(goals, lambda g: layer(g, f"{series.P99}{{{ids}}}")), ""),
            (_each(goals, lambda g: layer(g, f"{series.TOTAL}{{{ids}}}")), "")),
            "none", NEUTRAL, 24,
            "Every cache: hit rate and its distance to the layer's goal (red: below; empty: too "
            "little traffic to judge), P99 (red above the goal) and lookups per second. Click "
            "a cache for its layer's dashboard.", height=8, extra=_table_extra(t)),
    ]

