"""The last build of each image, kept in memory for the status page.

Apart from the page section (``status.py``) so that counting a build, on every ingest and every
BuildKit record, never loads the page's code: ``serve`` pays for that with the first visit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

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
