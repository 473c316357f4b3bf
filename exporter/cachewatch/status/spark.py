"""Sparklines as bars: one per minute (one per 10 s while the history is younger than ten
minutes), the y axis scaled to the data and the goal, a dashed line at the goal, and each bar's
value in its ``<title>`` (the browser's tooltip)."""

from __future__ import annotations

import html
from collections.abc import Callable

WIDTH, HEIGHT = 150, 28
_PAD = 2


def _axis(values: list[float], goal: float | None, ceiling: float | None) -> tuple[float, float]:
    """(bottom, top) of the y axis: the data's range and the goal, a little room below."""
    low = min([*values, *([goal] if goal is not None else [])], default=0.0)
    high = max([*values, *([goal] if goal is not None else [])], default=1.0)
    if ceiling is not None:
        high = ceiling
    if high <= low:
        return (0.0, high or 1.0)
    return (max(0.0, low - (high - low) * 0.2), high)


def bars(points: list[float | None], *, label: str, goal: float | None = None,
         ceiling: float | None = None, step_seconds: float = 60.0,
         text: Callable[[float], str] = str) -> str:
    """An inline SVG with a ``<rect class="bar">`` per known point (gaps stay empty).

    ``ceiling`` fixes the top of the axis (a ratio: 1.0); ``text`` formats a value for its title.
    """
    known = [p for p in points if p is not None]
    bottom, top = _axis(known, goal, ceiling)
    span = top - bottom
    slot = WIDTH / max(len(points), 1)
    usable = HEIGHT - 2 * _PAD

    def height(value: float) -> float:
        return round(max(1.0, usable * (value - bottom) / span), 1)

    rects = []
    for index, value in enumerate(points):
        if value is None:
            continue
        ago = (len(points) - 1 - index) * step_seconds
        when = "now" if ago == 0 else _ago(ago)
        h = height(value)
        rects.append(f'<rect class="bar" x="{round(index * slot + 0.5, 1)}" '
                     f'y="{round(HEIGHT - _PAD - h, 1)}" width="{round(max(slot - 1, 1), 1)}" '
                     f'height="{h}"><title>{html.escape(text(value))}, {when}</title></rect>')
    guide = ""
    if goal is not None:
        y = round(HEIGHT - _PAD - usable * (goal - bottom) / span, 1)
        guide = f'<line class="target" x1="0" x2="{WIDTH}" y1="{y}" y2="{y}"/>'
    return (f'<svg class="spark" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(label)}">'
            f"<title>{html.escape(label)}</title>{''.join(rects)}{guide}</svg>")


def _ago(seconds: float) -> str:
    """``70`` -> ``1 min 10 s ago``, ``120`` -> ``2 min ago``, ``30`` -> ``30 s ago``."""
    minutes, rest = divmod(round(seconds), 60)
    if not minutes:
        return f"{rest} s ago"
    return f"{minutes} min {rest} s ago" if rest else f"{minutes} min ago"
