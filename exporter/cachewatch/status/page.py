"""The ``/`` page: the first look a user needs, without Grafana.

Every source's caches with their hit rate over the last 5 minutes and the last hour, P99 where
latency is measured, a sparkline of the hour, state and last error; the activity families the
sources declare (pulls per repository...). The numbers come from the exposition itself
(``history``) and the sections from the sources' declarations, so a new source shows up with no
code here. Server-rendered HTML with inline SVG, no script, refreshing itself.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from prometheus_client.metrics_core import Metric

from .. import __version__
from ..collectors.health import TargetState
from ..metrics import contract
from ..sources import activity, layers, packages, probe_examples, sections
from .history import WINDOWS, Key, Snapshot, View, quantile

REFRESH_SECONDS = 10
_WIDTH, _HEIGHT = 120, 24
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em 2em;color:#1f2328}
h1{margin:0 0 .2em} h1 small{font-size:.5em;color:#656d76}
h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse} th,td{padding:.25em .7em;text-align:left;vertical-align:middle}
th{font-weight:600;border-bottom:1px solid #d0d7de;font-size:.9em}
tr:nth-child(even){background:#f6f8fa}
.num{text-align:right;font-variant-numeric:tabular-nums} .up{color:#1a7f37} .down{color:#cf222e}
.waiting,.pushed{color:#656d76} .error{color:#cf222e;font-size:.85em;max-width:28em}
.spark polyline{fill:none;stroke:#0969da;stroke-width:1.5} .spark circle{fill:#0969da}
.spark .target{stroke:#d0d7de;stroke-dasharray:3 2} .probe{font-size:.8em}
nav a{margin-right:.8em} .note{color:#656d76;font-size:.9em}
"""


@dataclass
class Row:
    """One cache as the page shows it."""

    layer: str
    cache: str
    rates: list[float | None] = field(default_factory=list)  # hit ratio per window
    per_second: float | None = None  # lookups per second over the first window
    p99: float | None = None  # seconds, over the first window
    minutes: list[float | None] = field(default_factory=list)  # hit ratio per minute
    state: TargetState | None = None


def _layer_of(collector: str) -> str:
    """The layer a collector's targets belong to, as its section declares it."""
    section = sections().get(collector)
    return section.shown_layer if section else collector


def rows(view: View, now_snapshot: Snapshot, now: float,
         states: Iterable[TargetState]) -> list[Row]:
    """Every cache with lookups, plus every target the exporter reads (a down target has no
    lookups, and is the row a user most needs to see)."""
    counters = now_snapshot.counters
    caches = sorted({(layer, cache) for kind, layer, cache, _ in counters if kind == "lookups"})
    by_key = {key: Row(*key) for key in caches}
    for state in states:
        key = (_layer_of(state.collector), state.target)
        by_key.setdefault(key, Row(*key)).state = state
    for (layer, cache), row in by_key.items():
        hit: Key = ("lookups", layer, cache, "hit")
        miss: Key = ("lookups", layer, cache, "miss")
        if hit not in counters and miss not in counters:
            continue
        hits_now, misses_now = counters.get(hit, 0.0), counters.get(miss, 0.0)
        for window in WINDOWS:
            hits = view.increase(hit, hits_now, window, now)
            total = hits + view.increase(miss, misses_now, window, now)
            row.rates.append(hits / total if total > 0 else None)
        if view.value_at(hit, now - WINDOWS[0]) is not None:  # a rate needs a full window
            row.per_second = (view.increase(hit, hits_now, WINDOWS[0], now)
                              + view.increase(miss, misses_now, WINDOWS[0], now)) / WINDOWS[0]
        row.minutes = [None if h is None or m is None or h + m <= 0 else h / (h + m)
                       for h, m in zip(view.minutes(hit, hits_now, now),
                                       view.minutes(miss, misses_now, now), strict=True)]
        buckets = now_snapshot.latency.get((layer, cache))
        if buckets:
            row.p99 = quantile(0.99, view.latency_increase((layer, cache), buckets, WINDOWS[0],
                                                           now))
    order = [layer.name for layer in layers()]
    return sorted(by_key.values(), key=lambda r: (
        order.index(r.layer) if r.layer in order else len(order), r.layer, r.cache))


def _percent(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio * 100:.1f}%"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def sparkline(points: list[float | None], *, ceiling: float = 1.0, target: float | None = None,
              label: str) -> str:
    """An inline SVG line of ``points`` (0..ceiling), broken where a point is missing, with a
    dashed line at ``target``."""
    step = _WIDTH / max(len(points) - 1, 1)

    def y(value: float) -> float:
        return round(_HEIGHT - 2 - (_HEIGHT - 4) * min(value / ceiling, 1.0), 1) if ceiling \
            else _HEIGHT - 2

    segments: list[list[str]] = [[]]
    for index, value in enumerate(points):
        if value is None:
            segments.append([])
        else:
            segments[-1].append(f"{round(index * step, 1)},{y(value)}")
    lines = "".join(
        f'<polyline points="{" ".join(s)}"/>' if len(s) > 1 else
        f'<circle cx="{s[0].split(",")[0]}" cy="{s[0].split(",")[1]}" r="1.5"/>'
        for s in segments if s)
    guide = (f'<line class="target" x1="0" x2="{_WIDTH}" y1="{y(target)}" y2="{y(target)}"/>'
             if target is not None else "")
    return (f'<svg class="spark" width="{_WIDTH}" height="{_HEIGHT}" '
            f'viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="{html.escape(label)}">'
            f"{guide}<g>{lines}</g></svg>")


def _state(row: Row) -> tuple[str, str, str]:
    """(text, css class, last error) for a row."""
    state = row.state
    if state is None:
        return "pushed", "pushed", ""
    if state.up is None:
        return "not read yet", "waiting", ""
    if state.up:
        age = f", {time.time() - state.checked_at:.0f}s ago" if state.checked_at else ""
        return f"up{age}", "up", ""
    return f"down ({state.reason})", "down", state.message or ""


def _row_html(row: Row) -> str:
    text, css, error = _state(row)
    name = html.escape(row.cache)
    probe = ""
    modules = list(probe_examples())
    if row.state is not None and row.state.collector in modules:
        # the default module (the first) needs no ``module=``
        module = "" if row.state.collector == modules[0] else f"&module={row.state.collector}"
        probe = (f' <a class="probe" href="probe?target='
                 f'{html.escape(quote(row.cache, safe="") + module, quote=True)}">probe</a>')
    spark = sparkline(row.minutes, target=contract.HIT_RATE_TARGET,
                      label=f"hit rate of {row.cache} per minute, last hour") \
        if row.minutes else "–"
    rates = "".join(f'<td class="num rate">{_percent(rate)}</td>' for rate in row.rates) \
        or '<td class="num">–</td>' * len(WINDOWS)
    per_second = "–" if row.per_second is None else f"{row.per_second:.2f}"
    return (f'<tr data-layer="{html.escape(row.layer)}" data-cache="{name}">'
            f"<td>{name}{probe}</td>{rates}<td>{spark}</td>"
            f'<td class="num">{per_second}</td><td class="num">{_duration(row.p99)}</td>'
            f'<td class="{css}">{html.escape(text)}</td><td class="error">{html.escape(error)}'
            "</td></tr>")


def _activity_html(view: View, snapshot: Snapshot, now: float) -> str:
    """Every declared activity family (pulls per repository...) with its counts."""
    tables = []
    for family in activity().values():
        kind, group_label, item_label = family.kind, family.group, family.item
        keys = sorted(k for k in snapshot.counters if k[0] == kind)
        if not keys:
            continue
        body = []
        for key in keys:
            value = snapshot.counters[key]
            counts = [view.increase(key, value, window, now) for window in WINDOWS]
            minutes = view.minutes(key, value, now)
            ceiling = max((m for m in minutes if m is not None), default=0.0)
            spark = sparkline(minutes, ceiling=ceiling,
                              label=f"{kind} of {key[2]} per minute, last hour")
            body.append(
                f'<tr data-{group_label}="{html.escape(key[1])}" '
                f'data-{item_label}="{html.escape(key[2])}"><td>{html.escape(key[1])}</td>'
                f"<td>{html.escape(key[2])}</td>"
                + "".join(f'<td class="num">{count:.0f}</td>' for count in counts)
                + f"<td>{spark}</td></tr>")
        tables.append(
            f"<section><h2>{html.escape(family.title)}</h2><table><thead><tr>"
            f"<th>{group_label}</th>"
            f"<th>{item_label}</th><th>{kind}, 5 min</th><th>{kind}, 1 h</th>"
            f"<th>per minute, last hour</th></tr></thead><tbody>{''.join(body)}</tbody>"
            "</table></section>")
    return "".join(tables)


def _empty() -> str:
    """What the page says before anything is measured: each source's first step."""
    steps = [source.first_step for source in packages() if source.first_step]
    listed = ", ".join(steps[:-1]) + " or " + steps[-1] if len(steps) > 1 else "".join(steps)
    return (f"<p class=\"empty\">Nothing measured yet. {listed[:1].upper()}{listed[1:]} "
            "(see <a href=\"docs\">the API docs</a>).</p>")


def findings(metrics: Iterable[Metric]) -> dict[str, dict[str, set[str]]]:
    """Layer -> cache -> the rules found now, from the families the layers declare
    (``Layer.findings``), over every node of a cache."""
    families = {layer.findings: layer.name for layer in layers() if layer.findings}
    found: dict[str, dict[str, set[str]]] = {}
    for metric in metrics:
        if (layer := families.get(metric.name)) is not None:
            for sample in metric.samples:
                if sample.value > 0:
                    found.setdefault(layer, {}).setdefault(
                        sample.labels["cache"], set()).add(sample.labels["rule"])
    return found


def _findings_html(found: dict[str, set[str]]) -> str:
    if not found:
        return ""
    items = "".join(f"<li><b>{html.escape(cache)}</b>: {html.escape(', '.join(sorted(rules)))}"
                    "</li>" for cache, rules in sorted(found.items()))
    return (f'<div class="findings"><p class="note">Found now (<code>cachewatch doctor '
            f"ADDRESS</code> gives the evidence and the fix):</p><ul>{items}</ul></div>")


def render(view: View, snapshot: Snapshot, now: float, states: Iterable[TargetState],
           ready: dict[str, bool], found: dict[str, dict[str, set[str]]] | None = None) -> str:
    """The whole page; ``found``: what ``findings`` says of the metrics now."""
    titles = {layer.name: layer.title for layer in layers()}
    by_layer: dict[str, list[Row]] = {}
    for row in rows(view, snapshot, now, states):
        by_layer.setdefault(row.layer, []).append(row)
    sections = "".join(
        f"<section><h2>{html.escape(titles.get(layer, layer))}</h2><table><thead><tr>"
        "<th>cache</th><th>hit rate, 5 min</th><th>hit rate, 1 h</th>"
        "<th>hit rate per minute, last hour</th><th>lookups/s</th><th>P99, 5 min</th>"
        "<th>state</th><th>last error</th></tr></thead><tbody>"
        + "".join(_row_html(row) for row in layer_rows) + "</tbody></table>"
        + _findings_html((found or {}).get(layer, {})) + "</section>"
        for layer, layer_rows in by_layer.items())
    activity = _activity_html(view, snapshot, now)
    if not sections and not activity:
        sections = _empty()
    readiness = ", ".join(f"{html.escape(name)} {'ready' if done else 'starting'}"
                          for name, done in ready.items()) or "no collectors read targets"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>cachewatch</title><link rel="icon" href="data:,">
<style>{_STYLE}</style></head><body>
<h1>cachewatch <small>{html.escape(__version__)}</small></h1>
<nav><a href="metrics">/metrics</a><a href="docs">API docs</a><a href="readyz">/readyz</a>
<a href="healthz">/healthz</a></nav>
<p class="note">Collectors: {readiness}. Hit rates over the last 5 minutes and the last hour,
from counters kept in memory (until a window has filled: over what was seen so far); the dashed
line is the {contract.HIT_RATE_TARGET:.0%} alert threshold. Refreshes every {REFRESH_SECONDS} s;
Grafana dashboards and alerts: <code>cachewatch bundle</code>.</p>
{sections}{activity}
</body></html>
"""
