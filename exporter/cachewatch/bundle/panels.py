"""What a dashboard shows, independent of Grafana's JSON: panels with their queries, units and
threshold steps, and the dashboard (uid, title, template variables) they make up.

Sources' parts describe their dashboards with these; ``dashboards`` renders them all the same
way, so every dashboard gets the data source variable, the links and the layout.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .thresholds import Thresholds

Steps = tuple[tuple[str, float | None], ...]  # threshold steps: (color, from value)


@dataclass(frozen=True)
class Panel:
    """What a panel shows: enough to build it and to test every query against Prometheus.

    Queries select through ``fleet()`` (every series filtered by the identity variables) and
    take rates over ``$__rate_interval``; bar gauges and tables are instant queries. The
    description is what a reader sees on hovering the title: every panel has one.
    """

    kind: str  # timeseries, stat, bargauge, table, heatmap, row
    title: str
    exprs: tuple[tuple[str, str], ...]  # (expr, legend)
    unit: str
    steps: Steps
    width: int
    description: str
    height: int = 8
    # What "No data" says instead: the series that feed the panel, unless told.
    no_data: str = ""
    # Grafana panel JSON merged over the rendered panel (links, transformations, overrides).
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Bounds of the value axis; a latency panel's soft max is derived from its threshold.
    bounds: tuple[float, float] | None = None
    # The queries' lower limit of the step and of ``$__interval`` (Grafana's "Min step"): a
    # query counting over ``[$__interval]`` needs two samples in every step.
    min_interval: str = ""

    def __post_init__(self) -> None:
        if not self.description.strip():
            raise ValueError(f"panel {self.title!r} needs a description")

    @property
    def instant(self) -> bool:
        """Bar gauges and tables show one value per series now: an instant query (a range
        query would rank every step on its own and return more series than asked for)."""
        return self.kind in ("bargauge", "table")


Variables = Callable[[Thresholds], tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class DashboardSpec:
    """One dashboard: ``key`` names its file (``dashboards/<key>.json``), ``uid`` is what alerts
    link to, ``variables`` are its own (name, ``label_values`` query) template variables, after
    the data source and the fleet's identity variables every dashboard has."""

    key: str
    uid: str
    title: str
    panels: Callable[[Thresholds], list[Panel]]
    variables: Variables
    # The ``ALERTS`` selector of the alerts to mark on the panels, and Grafana's own alert
    # state changes ("Annotations & Alerts"); None for neither.
    alert_annotation: Callable[[Thresholds], str] | None = None


def panel_id(title: str) -> int:
    """A panel's id, derived from its title: adding or moving a panel changes no other id, so
    alert links (``viewPanel=``) and bookmarks stay valid. Titles are unique per dashboard;
    the renderer refuses two ids alike."""
    return zlib.crc32(title.encode()) % 1_000_000 + 1


def fleet(t: Thresholds, *matchers: str) -> str:
    """A label selector filtered by every identity variable, then ``matchers``:
    ``{cluster=~"$cluster", namespace=~"$namespace", job=~"$job", cache="users"}``."""
    return "{" + ", ".join((*(f'{label}=~"${label}"' for label in t.identity_labels),
                            *matchers)) + "}"


def legend(t: Thresholds, text: str) -> str:
    """``text`` after the identity labels that tell two series apart (``job`` is the same
    everywhere by default, so it is left out): ``{{cluster}} {{namespace}} {{cache}}``."""
    return " ".join((*("{{" + label + "}}" for label in t.identity_labels if label != "job"),
                     text))


def hit_steps(target: float) -> Steps:
    """Red below the hit-rate target: the panel's line is where the alert fires."""
    return (("red", None), ("green", target))


def latency_steps(target: float) -> Steps:
    """Red above the latency target: the panel's line is where the alert fires."""
    return (("green", None), ("red", target))


NEUTRAL: Steps = (("green", None),)
RED_FROM_ONE: Steps = (("green", None), ("red", 1.0))  # a count where one is a fault


def tidy_table(t: Thresholds, columns: Mapping[str, str], sort: str,
               coloured: bool = False) -> dict[str, Any]:
    """A table as the mixins show one (``Panel.extra``): no Time column, the identity labels
    first, then ``columns`` (label or ``Value`` -> title) in their order, sorted by the column
    titled ``sort``, greatest first; ``coloured``: the values' text in their threshold colour
    (a table colours no cell unless told)."""
    order = [*t.identity_labels, *columns.values()]
    colour = {"fieldConfig": {"overrides": [{
        "matcher": {"id": "byName", "options": columns["Value"]},
        "properties": [{"id": "custom.cellOptions", "value": {"type": "color-text"}}]}]}}
    return {"transformations": [
        {"id": "organize", "options": {
            "excludeByName": {"Time": True},
            "indexByName": {name: i for i, name in enumerate(order)},
            "renameByName": {name: title for name, title in columns.items() if name != title}}},
        {"id": "sortBy", "options": {"sort": [{"field": sort, "desc": True}]}},
    ], **(colour if coloured else {})}
