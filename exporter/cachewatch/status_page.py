"""The ``/`` page: what a person opening the exporter in a browser wants to see first."""

from __future__ import annotations

import html
import time
from urllib.parse import quote

from . import __version__
from .health import TargetState


def render(states: list[TargetState], ready: dict[str, bool]) -> str:
    """A small self-contained HTML page: targets with their state, links to the endpoints."""
    rows = []
    for s in states:
        if s.up is None:
            state, colour = "not read yet", "#888"
        elif s.up:
            state, colour = "up", "#1a7f37"
        else:
            state, colour = f"down ({s.reason})", "#cf222e"
        age = f"{time.time() - s.checked_at:.0f}s ago" if s.checked_at else "-"
        link = html.escape(quote(s.target, safe=""), quote=True)
        probe = (f'<a href="probe?target={link}">probe</a>'
                 if s.collector == "redis" else "")
        rows.append(
            f"<tr><td>{html.escape(s.collector)}</td><td>{html.escape(s.target)}</td>"
            f'<td style="color:{colour}">{html.escape(state)}</td>'
            f"<td>{s.duration * 1000:.1f} ms</td><td>{age}</td>"
            f"<td>{html.escape(s.message or '')}</td><td>{probe}</td></tr>"
        )
    readiness = ", ".join(f"{html.escape(k)}: {'ready' if v else 'starting'}"
                          for k, v in ready.items()) or "no collectors enabled"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>cachewatch</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left}}</style>
</head><body>
<h1>cachewatch {html.escape(__version__)}</h1>
<p>Cache hit rate and latency exporter.
<a href="metrics">/metrics</a> &middot; <a href="healthz">/healthz</a> &middot;
<a href="readyz">/readyz</a> &middot; <a href="docs">API docs</a></p>
<p>Collectors: {readiness}</p>
<table><tr><th>collector</th><th>target</th><th>state</th><th>last read took</th>
<th>checked</th><th>error</th><th></th></tr>
{''.join(rows)}
</table></body></html>
"""
