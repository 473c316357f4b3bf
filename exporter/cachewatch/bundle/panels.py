"""What a dashboard shows, independent of Grafana's JSON: panels with their queries, units and
threshold steps, and the dashboard (uid, title, template variables) they make up.

Sources' parts describe their dashboards with these; ``dashboards`` renders them all the same
way, so every dashboard gets the data source variable, the links and the layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .thresholds import Thresholds

Steps = tuple[tuple[str, float | None], ...]  # threshold steps: (color, from value)


@dataclass(frozen=True)
class Panel:
    """What a panel shows: enough to build it and to test every query against Prometheus."""

    kind: str  # timeseries, stat, bargauge, table, heatmap
    title: str
    exprs: tuple[tuple[str, str], ...]  # (expr, legend)
    unit: str
    steps: Steps
    width: int = 12
    description: str = ""


@dataclass(frozen=True)
class DashboardSpec:
    """One dashboard: ``key`` names its file (``dashboards/<key>.json``), ``uid`` is what alerts
    link to, ``variables`` are (name, ``label_values`` query) template variables."""

    key: str
    uid: str
    title: str
    panels: Callable[[Thresholds], list[Panel]]
    variables: tuple[tuple[str, str], ...]


def hit_steps(target: float) -> Steps:
    """Red below the hit-rate target: the panel's line is where the alert fires."""
    return (("red", None), ("green", target))


def latency_steps(target: float) -> Steps:
    """Red above the latency target: the panel's line is where the alert fires."""
    return (("green", None), ("red", target))


NEUTRAL: Steps = (("green", None),)
