"""A collector's families, made again only when what they are made of has changed.

Most of a scrape's collectors export counts that move only when something arrives (a
webhook, a refused request, a failed state write), not on every scrape; making their families
anew each time was a fifth of a default scrape's Python work outside the target reads. Each such
owner keeps a version, a number it raises on every change (after the change, under the lock
that guards it), and its collector keeps the families made at the last version it saw: an
unchanged collector costs one comparison, a changed one is made again, so nothing is served
stale. Families are never changed after they are made (``contract.Families`` copies a family
before it adds to one it did not make), which is what lets scrapes share them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

from prometheus_client.metrics_core import Metric

_NEVER = object()


class CachedFamilies:
    """The families of one collector and the version they were made at."""

    __slots__ = ("_made",)

    def __init__(self) -> None:
        self._made: tuple[Hashable, list[Metric]] = (_NEVER, [])

    def get(self, version: Hashable, make: Callable[[], Iterable[Metric]]) -> list[Metric]:
        """The families for ``version``: the kept ones if it has not moved, else ``make()``'s.

        ``version`` must be read before whatever ``make`` reads: a change that lands while
        they are made raises the version again, so the next scrape makes them again. One
        tuple is swapped, so two threads collecting at once can only store a pair that
        belongs together."""
        made_at, families = self._made
        if made_at != version:
            families = list(make())
            self._made = (version, families)
        return families
