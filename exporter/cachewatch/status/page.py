"""The ``/`` page: the first look a user needs, without Grafana.

The frame: a tile per layer (hit rate over 5 minutes, lookups a second, P99 where measured,
coloured against the goals the bundle's alerts are drawn at, ``goals``), the caches below goal
in words, then each source in turn: its layers' caches (rates over 5 minutes and the hour, a
sparkline, state and last error), its findings and the section it declares
(``SourcePackage.status``), or, while it has seen nothing, what feeds it. The numbers come from
the exposition itself (``history``) and every list from the sources' declarations, so a new
source shows up with no code here. Server-rendered HTML with inline SVG, no script, refreshing
itself.
"""

from __future__ import annotations

import html
import importlib
import time
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import quote

from prometheus_client.metrics_core import Metric

from .. import __version__
from ..collectors.health import TargetState
from ..defaults import DOCS_URL
from ..source import Layer, Source, SourcePackage
from ..sources import activity, layers, packages, probe_examples
from .context import PageContext, goal_percent, percent
from .goals import Goals
from .history import WINDOWS, Snapshot, View
from .row import Row, duration, rows
from .spark import bars
from .tiles import below_goal, tile_html, tiles

REFRESH_SECONDS = 10
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em 2em;color:#1f2328}
h1{margin:0 0 .2em} h1 small{font-size:.5em;color:#656d76}
h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse} th,td{padding:.25em .7em;text-align:left;vertical-align:middle}
th{font-weight:600;border-bottom:1px solid #d0d7de;font-size:.9em}
tr:nth-child(even){background:#f6f8fa} .wide{overflow-x:auto;max-width:100%}
.num{text-align:right;font-variant-numeric:tabular-nums} .up{color:#1a7f37} .down{color:#cf222e}
.waiting,.pushed{color:#656d76} .error{color:#cf222e;font-size:.85em;max-width:28em}
.spark .bar{fill:#0969da} .spark .target{stroke:#cf222e;stroke-dasharray:3 2}
.probe{font-size:.8em} nav a{margin-right:.8em} .note,.idle{color:#656d76;font-size:.9em}
.tiles{display:flex;flex-wrap:wrap;gap:.7em;margin:1em 0}
.tile{border:1px solid #d0d7de;border-left:6px solid #d0d7de;border-radius:6px;
padding:.5em .9em;min-width:10em;flex:1 1 10em}
.tile h3{margin:0;font-size:.95em} .tile .big{font-size:2.2em;font-weight:600;line-height:1.1}
.tile .goal{color:#656d76;font-size:.8em}
.tile.good{border-left-color:#1a7f37} .tile.bad{border-left-color:#cf222e}
.tile.bad .big,.p99.bad b{color:#cf222e} .tile.good .big{color:#1a7f37}
#below-goal{border:1px solid #d0d7de;border-radius:6px;padding:.5em .9em}
#below-goal ul{margin:.3em 0}
code,li,p{overflow-wrap:anywhere}
@media (max-width:600px){body{margin:.8em} .tile{min-width:8em}}
"""


def _count(value: float, kind: str) -> str:
    """``1 pull``, ``3 pulls``: a count in words that agree with it."""
    return f"{value:.0f} {kind.removesuffix('s') if round(value) == 1 else kind}"


def _has_activity(source: SourcePackage, page: PageContext) -> bool:
    """Whether the source's activity (pulls per repository...) has counts: then it has been
    fed, though no cache of its own shows a hit rate, and saying "nothing seen yet" would lie."""
    kinds = {family.kind for family in source.activity}
    return any(key[0] in kinds for key in page.snapshot.counters)


def _docs_link(source: SourcePackage) -> str:
    """`` (<a>docs</a>)`` to its docs page, or nothing for a source without one."""
    if not source.docs:
        return ""
    return f' (<a href="{html.escape(DOCS_URL + source.docs)}">docs</a>)'


def _fed(layer: Layer, page: PageContext) -> bool:
    """Whether a section feeding ``layer`` is enabled (``Layer.feeders``)."""
    return any(name in page.sources for name in layer.feeders)


def _idle_name(source: SourcePackage, page: PageContext) -> str:
    """What an idle source's line calls the things it would show, by the names their tiles
    and sections have: its fed layers' titles, else its activity tables' titles."""
    names = [layer.title for layer in source.layers if _fed(layer, page)] \
        or [family.title for family in source.activity] or [source.title or source.name]
    return " and ".join(names)


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


def _row_html(row: Row, goals: Goals, latency: bool) -> str:
    """A cache's row; ``latency``: whether its layer measures any (the P99 column)."""
    text, css, error = _state(row)
    name = html.escape(row.cache)
    probe = ""
    modules = list(probe_examples())
    if row.state is not None and row.state.collector in modules:
        # the default module (the first) needs no ``module=``
        module = "" if row.state.collector == modules[0] else f"&module={row.state.collector}"
        probe = (f' <a class="probe" href="probe?target='
                 f'{html.escape(quote(row.cache, safe="") + module, quote=True)}">probe</a>')
    every = f"{row.step:g} s" if row.step < 60 else "minute"
    spark = bars(row.minutes, goal=goals.hit_rate_of(row.layer), step_seconds=row.step,
                 label=f"hit rate of {row.cache}, one bar per {every}", text=percent) \
        if row.minutes else "–"
    rates = "".join(f'<td class="num rate">{percent(rate)}</td>' for rate in row.rates) \
        or '<td class="num">–</td>' * len(WINDOWS)
    per_second = "–" if row.per_second is None else f"{row.per_second:,.2f}"
    p99 = f'<td class="num">{duration(row.p99)}</td>' if latency else ""
    return (f'<tr data-layer="{html.escape(row.layer)}" data-cache="{name}">'
            f"<td>{name}{probe}</td>{rates}<td>{spark}</td>"
            f'<td class="num">{per_second}</td>{p99}'
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
            step = view.step(now)
            minutes = view.minutes(key, value, now, step=step)
            every = f"{step:g} s" if step < 60 else "minute"
            spark = bars(minutes, step_seconds=step, text=lambda v, k=kind: _count(v, k),
                         label=f"{kind} of {key[2]}, one bar per {every}")
            body.append(
                f'<tr data-{group_label}="{html.escape(key[1])}" '
                f'data-{item_label}="{html.escape(key[2])}"><td>{html.escape(key[1])}</td>'
                f"<td>{html.escape(key[2])}</td>"
                + "".join(f'<td class="num">{count:.0f}</td>' for count in counts)
                + f"<td>{spark}</td></tr>")
        tables.append(
            f'<section><h2>{html.escape(family.title)}</h2><div class="wide"><table><thead><tr>'
            f"<th>{group_label}</th>"
            f"<th>{item_label}</th><th>{kind}, 5 min</th><th>{kind}, 1 h</th>"
            f"<th>recent</th></tr></thead><tbody>{''.join(body)}</tbody>"
            "</table></div></section>")
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


def _findings_html(layer: Layer, found: dict[str, set[str]]) -> str:
    if not found:
        return ""
    items = "".join(f"<li><b>{html.escape(cache)}</b>: {html.escape(', '.join(sorted(rules)))}"
                    "</li>" for cache, rules in sorted(found.items()))
    # the command as the layer's own doctor takes it ("<scheme>://HOST:PORT"), from its usage
    doctor = next((source.doctor for source in packages() if source.doctor and any(
        own.name == layer.name for own in source.layers)), None)
    argument = doctor.usage.split(" (")[0] if doctor else "ADDRESS"
    return (f'<div class="findings"><p class="note">Found now (<code>cachewatch doctor '
            f"{html.escape(argument)}</code> gives the evidence and the fix):</p>"
            f"<ul>{items}</ul></div>")




def _layer_html(layer: Layer, layer_rows: list[Row], goals: Goals,
                found: dict[str, set[str]]) -> str:
    """A layer's table of caches (no P99 column where the layer measures no latency)."""
    p99 = "<th>P99, 5 min</th>" if layer.latency else ""
    return (f'<section data-layer="{html.escape(layer.name)}"><h2>{html.escape(layer.title)}'
            '</h2><div class="wide"><table><thead><tr>'
            "<th>cache</th><th>hit rate, 5 min</th><th>hit rate, 1 h</th><th>recent</th>"
            f"<th>lookups/s</th>{p99}<th>state</th><th>last error</th></tr></thead><tbody>"
            + "".join(_row_html(row, goals, layer.latency) for row in layer_rows)
            + "</tbody></table></div>" + _findings_html(layer, found) + "</section>")


def _section(source: SourcePackage, page: PageContext) -> str:
    """The HTML the source declares for the page (``SourcePackage.status``), if any."""
    if not source.status:
        return ""
    module, _, function = source.status.partition(":")
    render_section: Callable[[PageContext], str] = getattr(importlib.import_module(module),
                                                           function)
    return render_section(page)


def _sources_html(page: PageContext, by_layer: dict[str, list[Row]],
                  found: dict[str, dict[str, set[str]]]) -> str:
    """Each source: its layers' tables and its own section, or what feeds it while idle."""
    out = []
    for source in packages():
        enabled = any(section.name in page.sources for section in source.sections)
        tables = "".join(_layer_html(layer, by_layer[layer.name], page.goals,
                                     found.get(layer.name, {}))
                         for layer in source.layers if layer.name in by_layer)
        own = _section(source, page) if enabled or tables else ""
        if tables or own:
            out.append(tables + own)
        elif enabled and source.first_step and not _has_activity(source, page):
            out.append(f'<p class="idle" data-source="{html.escape(source.name)}"><b>'
                       f"{html.escape(_idle_name(source, page))}</b>: nothing seen yet; "
                       f"to feed it, {source.first_step}{_docs_link(source)}.</p>")
    known = {layer.name for layer in layers()}
    out += [_layer_html(Layer(name, name), layer_rows, page.goals, found.get(name, {}))
            for name, layer_rows in by_layer.items() if name not in known]
    return "".join(out)


def _shown_layers(page: PageContext, by_layer: dict[str, list[Row]]) -> list[Layer]:
    """The layers with a tile: those with caches (or targets) and those a section that feeds
    them is enabled for, whichever the source."""
    return [layer for layer in layers() if layer.name in by_layer or _fed(layer, page)]


def _collectors(ready: dict[str, bool], states: list[TargetState]) -> str:
    """Each collector /readyz waits for, by what a person asks of it: its targets and how many
    are down, or, for one with no targets, whether its first round is done."""
    said = []
    for name, done in ready.items():
        mine = [state for state in states if state.collector == name]
        if not mine:
            said.append(f"{name}: {'ready' if done else 'starting'}")
            continue
        down = sum(state.up is False for state in mine)
        unread = sum(state.up is None for state in mine)
        counts = [f"{down} down"] if down else []
        counts += [f"{unread} not read yet"] if unread else []
        state = ", ".join(counts) or ("all up" if len(mine) > 1 else "up")
        said.append(f"{name}: {_count(len(mine), 'targets')}, {state}")
    return "; ".join(html.escape(text) for text in said) or "none read targets"


def render(view: View, snapshot: Snapshot, now: float, states: Iterable[TargetState],
           ready: dict[str, bool], found: dict[str, dict[str, set[str]]] | None = None, *,
           goals: Goals | None = None, metrics: list[Metric] | None = None,
           sources: Mapping[str, Source] | None = None) -> str:
    """The whole page; ``found``: what ``findings`` says of the metrics now; ``metrics``: the
    exposition now; ``sources``: the running collectors by name."""
    page = PageContext(view, snapshot, now, goals or Goals(), metrics or [], sources or {})
    states = list(states)
    all_rows = rows(view, snapshot, now, states)
    by_layer: dict[str, list[Row]] = {}
    for row in all_rows:
        by_layer.setdefault(row.layer, []).append(row)
    titles = {layer.name: layer.title for layer in layers()}
    top = "".join(tile_html(tile, page.goals)
                  for tile in tiles(_shown_layers(page, by_layer), all_rows))
    body = _sources_html(page, by_layer, found or {}) + _activity_html(view, snapshot, now)
    if not by_layer and "<table" not in body:
        body = _empty() + body
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>cachewatch</title><link rel="icon" href="data:,">
<style>{_STYLE}</style></head><body>
<h1>cachewatch <small>{html.escape(__version__)}</small></h1>
<nav><a href="metrics">/metrics</a><a href="docs">API docs</a><a href="readyz">/readyz</a>
<a href="healthz">/healthz</a></nav>
<div class="tiles">{top}</div>
{below_goal(all_rows, page.goals, titles)}
<p class="note" id="collectors">Collectors (ready: a first round done, what
<a href="readyz">/readyz</a> waits for): {_collectors(ready, states)}.</p>
<p class="note" id="about">Hit rates over the last 5 minutes and the last hour, lookups/s and
the bars come from the last hour of the counters, which this page keeps in memory (until a
window has filled, after a start or a restart: over what was seen so far). The counts sent to
cachewatch are kept in the state store (<code>--state-url</code>, a SQLite file unless set) and
carry over a restart; those read from a target are the target's own. The dashed line is the
goal the alerts fire at ({goal_percent(page.goals.hit_rate)} unless the layer has its own).
Bars: one a minute, one per 10 s for the first ten minutes. Refreshes every {REFRESH_SECONDS} s;
Grafana dashboards and alerts: <code>cachewatch bundle</code>.</p>
{body}
</body></html>
"""
