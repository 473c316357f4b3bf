"""Grafana dashboards as grafanalib code, one per layer plus an overview.

Every panel reads through the ``datasource`` template variable (provisioned dashboards cannot
resolve ``__inputs``), has a unit and thresholds, and draws the alert thresholds as lines, so a
dashboard and its alerts always agree. Metric and recording-rule names come from ``contract``
and ``rules``: a rename changes the panels with them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
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

from .. import contract
from . import rules
from .thresholds import Thresholds

SCHEMA_VERSION = 39  # Grafana 10/11; grafanalib's own default is far older
DS = {"type": "prometheus", "uid": "${datasource}"}
WIDTH, HEIGHT = 24, 8
L = contract


@dataclass(frozen=True)
class Panel:
    """What a panel shows: enough to build it and to test every query against Prometheus."""

    kind: str  # timeseries, stat, bargauge, table, heatmap
    title: str
    exprs: tuple[tuple[str, str], ...]  # (expr, legend)
    unit: str
    steps: tuple[tuple[str, float | None], ...]  # threshold steps (color, from value)
    width: int = 12
    description: str = ""


def _hit_steps(target: float) -> tuple[tuple[str, float | None], ...]:
    return (("red", None), ("green", target))


def _latency_steps(target: float) -> tuple[tuple[str, float | None], ...]:
    return (("green", None), ("red", target))


NEUTRAL = (("green", None),)


def overview(t: Thresholds) -> list[Panel]:
    sel = '{layer=~"$layer", cache=~"$cache"}'
    return [
        Panel("timeseries", "Hit rate by layer and cache",
              ((f"{rules.HIT_RATIO}{sel}", "{{layer}} {{cache}}"),), "percentunit",
              _hit_steps(t.hit_rate), 24,
              f"Share of lookups served from cache; the line is the {t.hit_rate:.0%} target."),
        Panel("timeseries", "P99 latency (client-observed)",
              ((f"{rules.P99}{sel}", "{{layer}} {{cache}}"),), "s", _latency_steps(t.p99_seconds),
              12, f"The line is the {t.p99_seconds * 1000:g} ms target."),
        Panel("bargauge", "Worst hit rates now",
              ((f"bottomk(10, {rules.HIT_RATIO}{sel})", "{{layer}} {{cache}}"),), "percentunit",
              _hit_steps(t.hit_rate), 12),
        Panel("stat", "cachewatch alerts firing",
              (('count(ALERTS{alertstate="firing", alertname=~"Cache.*|Cachewatch.*|Redis.*|'
                'Docker.*|Registry.*"}) or vector(0)', "firing"),), "none",
              (("green", None), ("red", 1)), 8),
        Panel("stat", "Targets down",
              ((f"count({L.COLLECTOR_UP.name} == 0) or vector(0)", "down"),), "none",
              (("green", None), ("red", 1)), 8),
        Panel("stat", "Lookups per second",
              ((f"sum({rules.TOTAL}{sel})", "lookups/s"),), "reqps", NEUTRAL, 8),
    ]


def builds(t: Thresholds) -> list[Panel]:
    sel = '{image=~"$image"}'
    return [
        Panel("timeseries", f"Build cache hit rate ({t.build_window})",
              ((f"{rules.BUILD_RATIO}{t.build_window}{sel}", "{{image}}"),), "percentunit",
              _hit_steps(t.build_hit_rate), 24),
        Panel("timeseries", "Time re-running steps (per hour)",
              ((f"sum by (image) (increase({L.DOCKER_BUILD_REBUILD_SECONDS.name}{sel}[1h]))",
                "{{image}}"),), "s", NEUTRAL, 12,
              "Seconds spent executing steps in builds that had a usable cache."),
        Panel("table", "Top cache busters",
              ((f"topk(10, sum by (image, instruction) "
                f"(increase({L.DOCKER_BUILD_CACHE_BUSTERS.name}{sel}[$__range])))", ""),),
              "none", NEUTRAL, 12, "The instruction that first missed, per build."),
        Panel("timeseries", "Builds by outcome (per hour)",
              ((f"sum by (status) (increase({L.DOCKER_BUILDS.name}{sel}[1h]))", "{{status}}"),),
              "none", NEUTRAL, 12),
        Panel("heatmap", "Build duration",
              ((f"sum by (le) (increase({L.DOCKER_BUILD_DURATION.name}_bucket{sel}"
                "[$__rate_interval]))", "{{le}}"),), "s", NEUTRAL, 12),
        Panel("timeseries", "Build cache size and reclaimable",
              ((f"sum by (host) ({L.DOCKER_BUILD_CACHE_BYTES.name})", "{{host}} size"),
               (f"{L.DOCKER_BUILD_CACHE_RECLAIMABLE.name}", "{{host}} reclaimable")),
              "bytes", NEUTRAL, 12),
        Panel("timeseries", "Image events (per hour)",
              ((f"sum by (action) (increase({L.DOCKER_EVENTS.name}[1h]))", "{{action}}"),),
              "none", NEUTRAL, 12),
    ]


def registry(t: Thresholds) -> list[Panel]:
    sel = '{repository=~"$repository"}'
    return [
        Panel("timeseries", "Image pulls by repository",
              ((f"topk(10, sum by (repository) (rate({L.REGISTRY_IMAGE_PULLS.name}{sel}[5m])))",
                "{{repository}}"),), "reqps", NEUTRAL, 12),
        Panel("timeseries", "Bytes pulled by repository",
              ((f"topk(10, sum by (repository) (rate({L.REGISTRY_PULLED_BYTES.name}{sel}[5m])))",
                "{{repository}}"),), "Bps", NEUTRAL, 12),
        Panel("timeseries", "Pull-through cache hit rate",
              ((f'{rules.HIT_RATIO}{{layer="registry"}}', "{{cache}}"),), "percentunit",
              _hit_steps(t.registry_hit_rate), 12),
        Panel("timeseries", "Layer reuse: mounts and HEAD checks",
              ((f"sum(rate({L.REGISTRY_BLOB_MOUNTS.name}[5m]))", "mounts"),
               (f"sum(rate({L.REGISTRY_HEAD_CHECKS.name}[5m]))", "HEAD checks")),
              "reqps", NEUTRAL, 12),
        Panel("timeseries", "Webhook health",
              ((f"sum by (source, reason) (rate({L.REGISTRY_REJECTED.name}[5m]))",
                "rejected {{source}} {{reason}}"),
               (f"sum by (source) (rate({L.REGISTRY_DUPLICATES.name}[5m]))",
                "duplicates {{source}}"),
               (f"sum by (source) (rate({L.REGISTRY_EVENTS.name}[5m]))", "events {{source}}")),
              "reqps", NEUTRAL, 12),
        Panel("timeseries", "Registry notification queue",
              ((f"{L.REGISTRY_NOTIFICATIONS_PENDING.name}", "{{registry}} {{endpoint}}"),),
              "none", (("green", None), ("orange", 100)), 12),
    ]


def redis(t: Thresholds) -> list[Panel]:
    sel = '{layer="redis", cache=~"$cache"}'
    one = '{cache=~"$cache"}'
    return [
        Panel("timeseries", "Hit rate", ((f"{rules.HIT_RATIO}{sel}", "{{cache}}"),),
              "percentunit", _hit_steps(t.hit_rate), 12),
        Panel("timeseries", "P99: client-observed vs server-side",
              ((f"{rules.P99}{sel}", "{{cache}} client"),
               (f'max by (cache) ({L.REDIS_SERVER_LATENCY.name}{{quantile="0.99", '
                f'cache=~"$cache", command!~"{rules.ADMIN_COMMANDS}"}})', "{{cache}} server")),
              "s", _latency_steps(t.p99_seconds), 12),
        Panel("timeseries", "Evictions and expirations",
              ((f"sum by (cache) (rate({L.CACHE_EVICTIONS.name}{sel}[5m]))",
                "{{cache}} evicted"),
               (f"sum by (cache) (rate({L.REDIS_EXPIRED_KEYS.name}{one}[5m]))",
                "{{cache}} expired")), "ops", NEUTRAL, 12),
        Panel("timeseries", "Memory vs maxmemory",
              ((f"{L.CACHE_BYTES.name}{sel}", "{{cache}} used"),
               (f"{L.REDIS_MAXMEMORY.name}{one} > 0", "{{cache}} maxmemory")),
              "bytes", NEUTRAL, 12),
        Panel("timeseries", "Connected clients",
              ((f"{L.REDIS_CONNECTED_CLIENTS.name}{one}", "{{cache}}"),), "none", NEUTRAL, 12),
        Panel("timeseries", "Commands per second",
              ((f"sum by (cache) (rate({L.REDIS_COMMANDS_PROCESSED.name}{one}[5m]))",
                "{{cache}}"),), "ops", NEUTRAL, 12),
    ]


def app(t: Thresholds) -> list[Panel]:
    sel = '{layer="app", cache=~"$cache"}'
    one = '{cache=~"$cache"}'
    return [
        Panel("timeseries", "Hit rate per cache", ((f"{rules.HIT_RATIO}{sel}", "{{cache}}"),),
              "percentunit", _hit_steps(t.hit_rate), 12),
        Panel("timeseries", "Two-level effective hit rate",
              ((f"sum by (cache) (rate({L.CACHE_EFFECTIVE_HITS.name}{sel}[5m])) / "
                f"sum by (cache) (rate({L.CACHE_LOOKUPS.name}{sel}[5m]))", "{{cache}}"),),
              "percentunit", _hit_steps(t.hit_rate), 12,
              "(L1 hits + L2 hits on L1 misses) / L1 lookups: a ratio of rates."),
        Panel("timeseries", "Load time per load",
              ((f"sum by (cache) (rate({L.APP_CACHE_LOAD_SECONDS.name}{one}[5m])) / "
                f"sum by (cache) (rate({L.APP_CACHE_LOADS.name}{one}[5m]))", "{{cache}}"),),
              "s", _latency_steps(t.p99_seconds), 12),
        Panel("timeseries", "Evictions",
              ((f"sum by (cache) (rate({L.CACHE_EVICTIONS.name}{sel}[5m]))", "{{cache}}"),),
              "ops", NEUTRAL, 12),
        Panel("timeseries", "Instances reporting",
              ((f"{L.APP_CACHE_INSTANCES.name}{one}", "{{cache}}"),), "none", NEUTRAL, 12),
        Panel("table", "Seconds since each instance pushed",
              ((f"time() - {L.APP_CACHE_LAST_PUSH.name}{one}", ""),), "s",
              (("green", None), ("orange", 60)), 12),
    ]


DASHBOARDS = {
    "overview": ("cachewatch: cache efficiency overview", overview),
    "builds": ("cachewatch: Docker builds", builds),
    "registry": ("cachewatch: registry", registry),
    "redis": ("cachewatch: Redis", redis),
    "app": ("cachewatch: application caches", app),
}
VARIABLES = {
    "overview": (("layer", f"label_values({L.CACHE_LOOKUPS.name}, layer)"),
                 ("cache", f'label_values({L.CACHE_LOOKUPS.name}{{layer=~"$layer"}}, cache)')),
    "builds": (("image", f"label_values({L.DOCKER_BUILD_STEPS.name}, image)"),),
    "registry": (("repository", f"label_values({L.REGISTRY_IMAGE_PULLS.name}, repository)"),),
    "redis": (("cache", f'label_values({L.CACHE_LOOKUPS.name}{{layer="redis"}}, cache)'),),
    "app": (("cache", f'label_values({L.CACHE_LOOKUPS.name}{{layer="app"}}, cache)'),),
}


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


def dashboard(key: str, t: Thresholds) -> Dashboard:
    title, build = DASHBOARDS[key]
    panels = build(t)
    variables = [Template(name="datasource", label="Data source", query="prometheus",
                          type="datasource")]
    for name, query in VARIABLES[key]:
        variables.append(Template(name=name, label=name.title(), query=query, dataSource=DS,
                                  includeAll=True, multi=True, allValue=".*", refresh=2,
                                  default="$__all"))
    return Dashboard(
        title=title,
        uid=rules.DASHBOARDS[key],
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


def render(key: str, t: Thresholds) -> str:
    """The dashboard's JSON, stable across runs (sorted keys)."""
    data = json.loads(json.dumps(dashboard(key, t).to_json_data(), cls=DashboardEncoder))
    for panel in data["panels"]:
        _modernise(panel)
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


def all_exprs(t: Thresholds) -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) for every query, for the end-to-end check."""
    return [(key, panel.title, expr) for key, (_, build) in DASHBOARDS.items()
            for panel in build(t) for expr, _ in panel.exprs]


PROVISIONING_DASHBOARDS = {
    "apiVersion": 1,
    "providers": [{"name": "cachewatch", "folder": "cachewatch", "type": "file",
                   "disableDeletion": False, "allowUiUpdates": False,
                   "options": {"path": "/var/lib/grafana/dashboards/cachewatch"}}],
}
PROVISIONING_DATASOURCE = {
    "apiVersion": 1,
    "datasources": [{"name": "Prometheus", "type": "prometheus", "uid": "prometheus",
                     "access": "proxy", "url": "http://prometheus:9090", "isDefault": True}],
}
