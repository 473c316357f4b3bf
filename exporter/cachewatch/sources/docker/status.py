"""The Docker source's part of the status page: the last build of each image.

Counters say how builds went over a window; a person opening the page asks what the last build
of ``app`` did: how many steps came from cache, which instruction busted it and the time that
cost. ``LastBuilds`` keeps that per image in memory (bounded; gone after a restart, where the
counters are not), fed by the builds that are ingested (logs, summaries), and ``section``
shows it with the source it came from. No P99 column: a build step
has no lookup latency.
"""

from __future__ import annotations

import html
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from ...status.context import PageContext, percent

MAX_IMAGES = 100


@dataclass(frozen=True)
class LastBuild:
    """What one build did with the cache."""

    image: str
    source: str  # log, buildkit
    status: str
    hits: int
    misses: int
    buster: str | None
    rebuild_seconds: float
    finished_at: float


class LastBuilds:
    """The last build of each image, the ``MAX_IMAGES`` most recently built."""

    def __init__(self) -> None:
        self._by_image: OrderedDict[str, LastBuild] = OrderedDict()
        # BuildKit's followers add from their own threads while a page render reads.
        self._lock = threading.Lock()

    def add(self, build: LastBuild) -> None:
        with self._lock:
            self._by_image.pop(build.image, None)
            self._by_image[build.image] = build
            while len(self._by_image) > MAX_IMAGES:
                self._by_image.popitem(last=False)

    def __iter__(self):  # type: ignore[no-untyped-def]
        with self._lock:
            return iter(list(self._by_image.values()))


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
