"""The Docker source's part of the status page: the last build of each image.

Counters say how builds went over a window; a person opening the page asks what the last build
of ``app`` did: how many steps came from cache, which instruction busted it and the time that
cost. ``LastBuilds`` keeps that per image in memory (bounded; gone after a restart, where the
counters are not; ``last_builds.py``), fed by every collector that counts builds, and ``section``
shows it with the source it came from. No P99 column: a build step
has no lookup latency.
"""

from __future__ import annotations

import html
import time

from ...status.context import PageContext, percent
from .last_builds import LastBuild, LastBuilds


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    return f"{seconds / 60:.0f} min ago" if seconds < 5400 else f"{seconds / 3600:.1f} h ago"


def _row(build: LastBuild, now: float) -> str:
    lookups = build.hits + build.misses
    rate = build.hits / lookups if lookups else None
    buster = f"<code>{html.escape(build.buster)}</code>" if build.buster else "none"
    return (f'<tr data-image="{html.escape(build.image)}"><td>{html.escape(build.image)}</td>'
            f'<td class="num">{build.hits} of {lookups} steps cached ({percent(rate)})</td>'
            f"<td>{buster}</td><td class=\"num\">{build.rebuild_seconds:.1f} s</td>"
            f"<td>{html.escape(build.status)}</td><td>{html.escape(build.source)}</td>"
            f"<td>{_ago(max(0.0, now - build.finished_at))}</td></tr>")


def section(page: PageContext) -> str:
    """The last build of each image, newest first, across the collectors that count builds."""
    builds = [build for source in page.sources.values()
              if isinstance(counted := getattr(source, "last_builds", None), LastBuilds)
              for build in counted]
    if not builds:
        return ""
    builds.sort(key=lambda b: b.finished_at, reverse=True)
    now = time.time()
    return ('<section data-section="last-builds"><h2>Last build of each image</h2>'
            '<div class="wide"><table><thead><tr><th>image</th><th>cache</th>'
            "<th>cache buster</th><th>time lost</th><th>outcome</th><th>source</th>"
            "<th>when</th></tr></thead><tbody>"
            + "".join(_row(build, now) for build in builds) + "</tbody></table></div></section>")
