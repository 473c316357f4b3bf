"""Grafana dashboards rendered with grafanalib: the overview plus one per source part.

Every panel reads through the ``datasource`` template variable (provisioned dashboards cannot
resolve ``__inputs``), is filtered by the fleet's identity variables (cluster, namespace, job by
default) and its own (layer, cache, ...), has a unit, thresholds and a description, and draws
the alert thresholds as lines, so a dashboard and its alerts always agree. Metric and
recording-rule names come from ``contract`` and ``series``: a rename changes the panels with
them. grafanalib's JSON is then written in today's shape: no nulls, none of its pre-Grafana-7
fields, and targets as Grafana's query editor saves them (tests check the result against
Grafana's dashboard models).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from grafanalib._gen import DashboardEncoder
from grafanalib.core import (
    BarGauge,
    Dashboard,
    DashboardLink,
    GridPos,
    Heatmap,
    RowPanel,
    Stat,
    Table,
    Template,
    Templating,
    TimeSeries,
)

from . import goal_row, overview, series
from .goals import Goal
from .panels import DashboardSpec, Panel, panel_id
from .part import BundlePart
from .parts import PARTS
from .rules import alert_rules, rejections
from .thresholds import Thresholds

SCHEMA_VERSION = 39  # Grafana 10/11; grafanalib's own default is far older
DS = {"type": "prometheus", "uid": "${datasource}"}
WIDTH = 24  # Grafana's grid


def specs(parts: Sequence[BundlePart] = PARTS) -> list[DashboardSpec]:
    """Every dashboard of the bundle: the overview first, then each part's, opening on the
    goal numbers of the layers it shows."""

    def goals(t: Thresholds) -> list[Goal]:
        return [goal for part in parts for goal in part.goals(t)]

    return [overview.dashboard(lambda t: alert_rules(t, parts), goals, rejections(parts),
                               [part.targets for part in parts if part.targets]),
            *(_opening_on_goals(part.dashboard, goals) for part in parts)]


def _opening_on_goals(spec: DashboardSpec, goals: overview.Goals) -> DashboardSpec:
    """``spec`` with the goal numbers of the layers whose goals name it before its panels."""

    def panels(t: Thresholds) -> list[Panel]:
        own = [goal for goal in goals(t) if goal.dashboard == spec.uid]
        return [*goal_row.panels(t, own), *spec.panels(t)]

    return replace(spec, panels=panels)


def _grafanalib_panel(panel: Panel, pid: int, grid: GridPos) -> Any:
    field = {"fieldConfig": {"defaults": {
        "unit": panel.unit,
        "thresholds": {"mode": "absolute", "steps": [{"color": c, "value": v}
                                                     for c, v in panel.steps]},
    }}}
    # Targets are written by ``_targets``; grafanalib's would carry legacy fields.
    common = {"title": panel.title, "dataSource": DS, "targets": [], "gridPos": grid,
              "id": pid, "description": panel.description, "extraJson": field}
    if panel.kind == "row":
        return RowPanel(title=panel.title, gridPos=grid, id=pid)
    if panel.kind == "timeseries":
        line = len(panel.steps) > 1
        return TimeSeries(unit=panel.unit, thresholdsStyleMode="line" if line else "off",
                          **common)
    if panel.kind == "stat":
        return Stat(format=panel.unit, reduceCalc="lastNotNull", **common)
    if panel.kind == "bargauge":
        return BarGauge(format=panel.unit, orientation="horizontal", **common)
    if panel.kind == "table":
        return Table(unit=panel.unit, **common)
    return Heatmap(dataFormat="tsbuckets", **common)


def _targets(panel: Panel) -> list[dict[str, Any]]:
    """The panel's queries, as Grafana's Prometheus query editor saves them."""
    fmt = {"table": "table", "heatmap": "heatmap"}.get(panel.kind, "time_series")
    step = {"interval": panel.min_interval} if panel.min_interval else {}
    return [{"datasource": DS, "editorMode": "code", "expr": expr, "legendFormat": legend,
             "refId": chr(ord("A") + i), "instant": panel.instant, "range": not panel.instant,
             "format": fmt, **step}
            for i, (expr, legend) in enumerate(panel.exprs)]


def _layout(panels: list[Panel]) -> Iterator[GridPos]:
    """Left to right, a new line when the width is full or a row starts; a line is as high as
    its highest panel."""
    x = y = tallest = 0
    for panel in panels:
        if x + panel.width > WIDTH or (panel.kind == "row" and x):
            x, y, tallest = 0, y + tallest, 0
        yield GridPos(h=panel.height, w=panel.width, x=x, y=y)
        x, tallest = x + panel.width, max(tallest, panel.height)


def identity_variables(t: Thresholds) -> list[tuple[str, str]]:
    """One variable per identity label, each among the values the ones before it allow
    (cluster, then namespace in those clusters, then job): read from the lookups every layer
    feeds, so a cache scraped straight from an application (Micrometer) is found too."""
    found = []
    for i, label in enumerate(t.identity_labels):
        before = ", ".join(f'{prior}=~"${prior}"' for prior in t.identity_labels[:i])
        found.append((label, f"label_values({series.TOTAL}{{{before}}}, {label})"))
    return found


def dashboard(spec: DashboardSpec, t: Thresholds) -> Dashboard:
    """The grafanalib dashboard: data source, the fleet's identity variables and ``spec``'s,
    links, laid-out panels."""
    panels = spec.panels(t)
    variables = [Template(name="datasource", label="Data source", query="prometheus",
                          type="datasource")]
    for name, query in [*identity_variables(t), *spec.variables(t)]:
        # Multi-select with All; All is `.*`, which also matches a series without the label
        # (a Prometheus with no `cluster` label still shows everything).
        variables.append(Template(name=name, label=name.title(), query=query, dataSource=DS,
                                  includeAll=True, multi=True, allValue=".*", refresh=2,
                                  default="$__all"))
    return Dashboard(
        title=spec.title,
        uid=spec.uid,
        description=spec.title,
        tags=["cachewatch"],
        timezone="browser",
        schemaVersion=SCHEMA_VERSION,
        refresh="30s",
        graphTooltip=1,  # a shared crosshair: one moment across every panel
        templating=Templating(list=variables),
        links=[DashboardLink(title="cachewatch", type="dashboards", tags=["cachewatch"],
                             asDropdown=True, includeVars=True, keepTime=True)],
        panels=[_grafanalib_panel(p, pid, grid)
                for p, pid, grid in zip(panels, _ids(spec, panels), _layout(panels),
                                        strict=True)],
    )


def _ids(spec: DashboardSpec, panels: list[Panel]) -> list[int]:
    """Each panel's id from its title (``panels.panel_id``), refused if two are alike."""
    ids = [panel_id(p.title) for p in panels]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{spec.key}: two panels share a title or an id")
    return ids


def _annotations(spec: DashboardSpec, t: Thresholds) -> list[dict[str, Any]]:
    """The alerts in time over every panel: Prometheus' ``ALERTS`` of the bundle's alerts
    firing for the selected fleet (a region per alert, titled by its name), and Grafana's own
    "Annotations & Alerts", the state changes of the Grafana-managed rules attached to this
    dashboard's panels (``__dashboardUid__``/``__panelId__``).

    The Prometheus annotation is written as Grafana 10+ saves one: the query in ``target``
    (its ``expr`` and ``interval``, the step that joins a firing alert's samples into one
    region), the label templates beside it."""
    if spec.alert_annotation is None:
        return []
    return [
        {"name": "Annotations & Alerts", "type": "dashboard",
         "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
         "hide": False, "iconColor": "rgba(0, 211, 255, 1)",
         "target": {"type": "dashboard", "limit": 100, "matchAny": False, "tags": []}},
        {"name": "cachewatch alerts firing", "datasource": DS, "enable": True, "hide": False,
         "iconColor": "red",
         "target": {"expr": spec.alert_annotation(t), "interval": "60s", "refId": "Anno"},
         "titleFormat": "{{alertname}}", "textFormat": "{{layer}} {{cache}} {{severity}}",
         "tagKeys": ",".join((*t.identity_labels, "layer", "cache", "severity")),
         "useValueForTime": False},
    ]


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
            "tooltip": {"show": True, "yHistogram": False}, "legend": {"show": True}}
        for legacy in ("cards", "color", "dataFormat", "heatmap", "hideZeroBuckets",
                       "highlightCards", "legend", "reverseYBuckets", "tooltip", "xAxis",
                       "xBucketNumber", "xBucketSize", "yAxis", "yBucketBound",
                       "yBucketNumber", "yBucketSize"):
            panel.pop(legacy, None)


# What grafanalib writes that today's dashboard model does not have (pre-Grafana-7 fields).
_LEGACY_DASHBOARD = ("__inputs", "rows", "sharedCrosshair", "hideControls", "gnetId")
_LEGACY_PANEL = ("cacheTimeout", "editable", "error", "height", "hideTimeOverride", "span",
                 "minSpan", "columns", "fontSize", "mappings", "color", "maxDataPoints",
                 "interval", "timeFrom", "timeShift")
_LEGACY_VARIABLE = ("auto", "auto_count", "auto_min", "tagValuesQuery", "tagsQuery", "useTags")


def _without_nulls(value: Any) -> Any:
    """grafanalib writes every unset option as null, which Grafana's model does not allow
    (except a threshold's base step, whose value is null by definition)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items()
                if v is not None or (k == "value" and "color" in value)}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


_METRIC = re.compile(r"\b(cachewatch_[a-z0-9_]+|[a-z_]+:[a-z0-9_]+:[a-z0-9_]+|ALERTS|up)\b")


def no_data(panel: Panel) -> str:
    """What a panel says with no data: its own text, else the series that feed it."""
    if panel.no_data:
        return panel.no_data
    fed = sorted({name for expr, _ in panel.exprs for name in _METRIC.findall(expr)})
    return "No data from " + ", ".join(fed) + " for the selection"


def _fields(panel: dict[str, Any], spec: Panel) -> None:
    """Fixed scales (a hit ratio on 0-1, a latency up to a little above its red line, so the
    line never falls off an auto-scaled axis), the "No data" text and the part's extras."""
    defaults = panel["fieldConfig"]["defaults"]
    defaults["noValue"] = no_data(spec)
    if spec.unit == "percentunit" and spec.kind != "table":
        defaults.update(min=0, max=1)
    red = [value for color, value in spec.steps if color == "red" and value is not None]
    if spec.unit == "s" and red and spec.kind == "timeseries":
        defaults.setdefault("custom", {})["axisSoftMax"] = round(max(red) * 1.2, 6)
    if spec.kind == "timeseries":
        panel["options"]["legend"].update(displayMode="table", placement="bottom",
                                          showLegend=True, calcs=["lastNotNull", "min"])
    _merge(panel, spec.extra)


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _row(panel: dict[str, Any]) -> dict[str, Any]:
    """A row as Grafana saves one (grafanalib's carries every panel field)."""
    return {"type": "row", "title": panel["title"], "id": panel["id"],
            "gridPos": panel["gridPos"], "collapsed": False, "panels": []}


def _today(data: dict[str, Any], panels: list[Panel]) -> dict[str, Any]:
    for key in _LEGACY_DASHBOARD:
        data.pop(key, None)
    for variable in data["templating"]["list"]:
        for key in _LEGACY_VARIABLE:
            variable.pop(key, None)
        variable.get("current", {}).pop("tags", None)
    for i, (panel, spec) in enumerate(zip(data["panels"], panels, strict=True)):
        if spec.kind == "row":
            data["panels"][i] = _row(panel)
            continue
        for key in _LEGACY_PANEL:
            panel.pop(key, None)
        panel["targets"] = _targets(spec)
        _modernise(panel)
        _fields(panel, spec)
    return _without_nulls(data)


def render(spec: DashboardSpec, t: Thresholds) -> str:
    """The dashboard's JSON, stable across runs (sorted keys)."""
    data = json.loads(json.dumps(dashboard(spec, t).to_json_data(), cls=DashboardEncoder))
    data["annotations"] = {"list": _annotations(spec, t)}
    return json.dumps(_today(data, spec.panels(t)), sort_keys=True, indent=2) + "\n"


def all_exprs(t: Thresholds, parts: Sequence[BundlePart] = PARTS) -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) for every query, for the end-to-end check."""
    return [(spec.key, panel.title, expr) for spec in specs(parts)
            for panel in spec.panels(t) for expr, _ in panel.exprs]
