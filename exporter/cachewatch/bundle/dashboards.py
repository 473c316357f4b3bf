"""Grafana dashboards rendered with grafanalib: the overview plus one per source part.

Every panel reads through the ``datasource`` template variable (provisioned dashboards cannot
resolve ``__inputs``), has a unit and thresholds, and draws the alert thresholds as lines, so a
dashboard and its alerts always agree. Metric and recording-rule names come from ``contract``
and ``series``: a rename changes the panels with them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from grafanalib._gen import DashboardEncoder
from grafanalib.core import (
    BarGauge,
    Dashboard,
    DashboardLink,
    GridPos,
    Heatmap,
    Stat,
    Table,
    Target,
    Template,
    Templating,
    TimeSeries,
)

from . import overview
from .panels import DashboardSpec, Panel
from .part import BundlePart
from .parts import PARTS
from .thresholds import Thresholds

SCHEMA_VERSION = 39  # Grafana 10/11; grafanalib's own default is far older
DS = {"type": "prometheus", "uid": "${datasource}"}
WIDTH, HEIGHT = 24, 8


def specs(parts: Sequence[BundlePart] = PARTS) -> list[DashboardSpec]:
    """Every dashboard of the bundle: the overview first, then each part's."""
    return [overview.dashboard(parts), *(part.dashboard for part in parts)]


def _target(expr: str, legend: str, ref: str) -> Target:
    return Target(expr=expr, legendFormat=legend, refId=ref, datasource=DS)


def _grafanalib_panel(panel: Panel, pid: int, grid: GridPos) -> Any:
    targets = [_target(e, legend, chr(ord("A") + i)) for i, (e, legend) in
               enumerate(panel.exprs)]
    field = {"fieldConfig": {"defaults": {
        "unit": panel.unit,
        "thresholds": {"mode": "absolute", "steps": [{"color": c, "value": v}
                                                     for c, v in panel.steps]},
    }}}
    common = {"title": panel.title, "dataSource": DS, "targets": targets, "gridPos": grid,
              "id": pid, "description": panel.description, "extraJson": field}
    if panel.kind == "timeseries":
        line = len(panel.steps) > 1
        return TimeSeries(unit=panel.unit, thresholdsStyleMode="line" if line else "off",
                          **common)
    if panel.kind == "stat":
        return Stat(format=panel.unit, reduceCalc="lastNotNull", **common)
    if panel.kind == "bargauge":
        return BarGauge(format=panel.unit, orientation="horizontal", **common)
    if panel.kind == "table":
        for target in targets:
            target.instant, target.format = True, "table"
        return Table(unit=panel.unit, **common)
    return Heatmap(dataFormat="tsbuckets", **common)


def _layout(panels: list[Panel]) -> Iterator[GridPos]:
    x = y = 0
    for panel in panels:
        if x + panel.width > WIDTH:
            x, y = 0, y + HEIGHT
        yield GridPos(h=HEIGHT, w=panel.width, x=x, y=y)
        x += panel.width


def dashboard(spec: DashboardSpec, t: Thresholds) -> Dashboard:
    """The grafanalib dashboard: data source and ``spec``'s variables, links, laid-out panels."""
    panels = spec.panels(t)
    variables = [Template(name="datasource", label="Data source", query="prometheus",
                          type="datasource")]
    for name, query in spec.variables:
        variables.append(Template(name=name, label=name.title(), query=query, dataSource=DS,
                                  includeAll=True, multi=True, allValue=".*", refresh=2,
                                  default="$__all"))
    return Dashboard(
        title=spec.title,
        uid=spec.uid,
        tags=["cachewatch"],
        timezone="browser",
        schemaVersion=SCHEMA_VERSION,
        refresh="30s",
        templating=Templating(list=variables),
        links=[DashboardLink(title="cachewatch", type="dashboards", tags=["cachewatch"],
                             asDropdown=True, includeVars=True, keepTime=True)],
        panels=[_grafanalib_panel(p, i + 1, grid)
                for i, (p, grid) in enumerate(zip(panels, _layout(panels), strict=True))],
    ).auto_panel_ids()


PLUGIN_VERSION = "10.4.0"


def _modernise(panel: dict[str, Any]) -> None:
    """grafanalib writes bar gauges and heatmaps in their pre-Grafana-7 shapes, which Grafana's
    migrations rewrite (a 0-10000 % scale, a heatmap without its unit); write today's."""
    if panel["type"] == "bargauge":
        panel["pluginVersion"] = PLUGIN_VERSION
        panel["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True,
            "minVizHeight": 10, "minVizWidth": 0, "valueMode": "color"}
        defaults = panel["fieldConfig"]["defaults"]
        if defaults.get("unit") == "percentunit":
            defaults.update(min=0, max=1)
    elif panel["type"] == "heatmap":
        panel["pluginVersion"] = PLUGIN_VERSION
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        panel["options"] = {
            "calculate": False, "cellGap": 1, "color": {"mode": "scheme", "scheme": "Oranges"},
            "yAxis": {"axisPlacement": "left", "unit": unit},
            "cellValues": {"unit": "none"}, "rowsFrame": {"layout": "auto"},
            "tooltip": {"mode": "single", "yHistogram": False}, "legend": {"show": True}}
        for legacy in ("cards", "color", "dataFormat", "heatmap", "hideZeroBuckets",
                       "highlightCards", "legend", "reverseYBuckets", "tooltip", "xAxis",
                       "xBucketNumber", "xBucketSize", "yAxis", "yBucketBound",
                       "yBucketNumber", "yBucketSize"):
            panel.pop(legacy, None)
        for target in panel["targets"]:
            target["format"] = "heatmap"


def render(spec: DashboardSpec, t: Thresholds) -> str:
    """The dashboard's JSON, stable across runs (sorted keys)."""
    data = json.loads(json.dumps(dashboard(spec, t).to_json_data(), cls=DashboardEncoder))
    for panel in data["panels"]:
        _modernise(panel)
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


def all_exprs(t: Thresholds, parts: Sequence[BundlePart] = PARTS) -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) for every query, for the end-to-end check."""
    return [(spec.key, panel.title, expr) for spec in specs(parts)
            for panel in spec.panels(t) for expr, _ in panel.exprs]
