"""The top of the status page: a tile per layer and, in words, the caches below goal.

A tile adds up its layer's caches over the first window (hits over lookups, lookups a second,
P99 of the merged latency buckets) and is coloured against the layer's goal. The words say the
same without colour: ``#below-goal`` names every cache that has seen at least
``Goals.min_lookups`` lookups in the window and missed its hit rate, or passed the P99 goal.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass

from ..source import Layer
from .context import goal_percent, percent
from .goals import Goals
from .history import quantile
from .row import Row, duration


@dataclass
class Tile:
    """One layer, summed over its caches."""

    layer: Layer
    hits: float = 0.0
    lookups: float = 0.0
    per_second: float | None = None
    p99: float | None = None

    @property
    def rate(self) -> float | None:
        return self.hits / self.lookups if self.lookups > 0 else None


def tiles(layers: Iterable[Layer], rows: list[Row]) -> list[Tile]:
    """A tile for each of ``layers``, in their order."""
    out = []
    for layer in layers:
        mine = [row for row in rows if row.layer == layer.name]
        tile = Tile(layer, sum(r.hits_seen for r in mine), sum(r.seen for r in mine))
        speeds = [r.per_second for r in mine if r.per_second is not None]
        tile.per_second = sum(speeds) if speeds else None
        merged: dict[str, float] = {}
        for row in mine:
            for le, count in row.latency.items():
                merged[le] = merged.get(le, 0.0) + count
        tile.p99 = quantile(0.99, merged) if merged else None
        out.append(tile)
    return out


def _verdict(good: bool | None) -> str:
    return "" if good is None else " good" if good else " bad"


def tile_html(tile: Tile, goals: Goals) -> str:
    """One tile: the hit rate large, lookups a second and P99 (where measured) under it."""
    goal = goals.hit_rate_of(tile.layer.name)
    rate = tile.rate
    judged = rate is not None and tile.lookups >= goals.min_lookups
    rate_css = _verdict(rate >= goal if judged and rate is not None else None)
    speed = "–" if tile.per_second is None else f"{tile.per_second:,.1f}"
    p99 = ""
    if tile.layer.latency:
        p99_css = _verdict(tile.p99 <= goals.p99_seconds if tile.p99 is not None else None)
        p99 = (f'<div class="p99{p99_css}">P99 <b>{duration(tile.p99)}</b> '
               f"(goal {duration(goals.p99_seconds)})</div>")
    return (f'<div class="tile{rate_css}" data-layer="{html.escape(tile.layer.name)}">'
            f"<h3>{html.escape(tile.layer.title)}</h3>"
            f'<div class="big">{percent(rate)}</div>'
            f'<div class="goal">hit rate, 5 min (goal {goal_percent(goal)})</div>'
            f'<div class="speed"><b>{speed}</b> lookups/s</div>{p99}</div>')


def below_goal(rows: Iterable[Row], goals: Goals, titles: dict[str, str]) -> str:
    """``#below-goal``: each cache short of its goal, with the numbers, or "none"."""
    items = []
    for row in rows:
        if row.seen < goals.min_lookups:
            continue
        goal = goals.hit_rate_of(row.layer)
        reasons = []
        if row.rate is not None and row.rate < goal:
            reasons.append(f"hit rate {percent(row.rate)} &lt; {goal_percent(goal)}")
        if row.p99 is not None and row.p99 > goals.p99_seconds:
            reasons.append(f"P99 {duration(row.p99)} &gt; {duration(goals.p99_seconds)}")
        if reasons:
            title = html.escape(titles.get(row.layer, row.layer))
            items.append(f'<li data-cache="{html.escape(row.cache)}"><b>'
                         f"{html.escape(row.cache)}</b> ({title}): {', '.join(reasons)}</li>")
    body = f"<ul>{''.join(items)}</ul>" if items else " <span>none</span>"
    return (f'<div id="below-goal"><strong>Below goal:</strong>{body}'
            f'<p class="note">Counted once a cache has seen {goals.min_lookups} lookups in the '
            "last 5 minutes.</p></div>")
