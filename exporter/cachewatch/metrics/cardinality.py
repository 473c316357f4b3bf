"""Bounded label values for anything named from outside (targets, repositories, caches).

Prometheus keeps every distinct label set as a series forever-ish; a label fed by webhooks or
query strings must not grow without bound, so past a cap new values fold into ``other``. Every
value is made safe (``labels.safe_label``) before it is counted, so a cap is also the point
where an outside string becomes a label value that can always be encoded.

A cap says when it bites: folded values are counted (``cachewatch_label_overflow_total{family}``,
by ``CapOverflow``) and logged once a minute per cap. Junk names cannot hold a cap forever: a
value not seen for ``forget_after`` gives its place to a new one once the cap is full (its
stored series stay; only new values are admitted again).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..logs import OncePerInterval
from . import contract
from .contract import Families
from .labels import safe_label

OTHER = "other"
FORGET_AFTER = 86400.0  # a capped value unseen this long may give its place to a new one
REFRESHES = 24  # when a value was last seen is kept this many times per window, not per call
log = logging.getLogger("cachewatch.cardinality")
_FOLDS = OncePerInterval(log)


class LabelCap:
    """Admits the first ``limit`` distinct values; later new ones become ``other``, unless a
    value has not been seen for ``forget_after`` seconds: it gives its place up.

    Values already admitted keep their own series, so existing dashboards stay stable when the
    cap is reached; ``overflowed`` counts folded lookups so the cap itself can be alerted on.
    ``name`` says which cap it is in the overflow counter and the log (``CapOverflow`` names an
    unnamed cap after its source and attribute).
    """

    # Across every cap of the process: how many were made, how many values they folded.
    # ``CapOverflow`` walks the collectors again only when a cap was made, or folded a value,
    # that its last walk did not see.
    made = 0
    folds = 0
    _made_lock = threading.Lock()  # guards both counts: neither may lose one

    def __init__(self, limit: int, name: str = "", forget_after: float = FORGET_AFTER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1:
            raise ValueError("the cap must admit at least one value")
        self.limit = limit
        self.name = name
        self.forget_after = forget_after
        self._clock = clock
        self._seen: dict[str, float] = {}  # value -> when last seen; oldest first
        self._lock = threading.Lock()
        self.overflowed = 0
        with LabelCap._made_lock:
            LabelCap.made += 1

    def __call__(self, value: str) -> str:
        value = safe_label(value)
        now = self._clock()
        seen_at = self._seen.get(value)
        if seen_at is not None and now - seen_at < self.forget_after / REFRESHES:
            return value  # seen lately: the hot path takes no lock
        with self._lock:
            if value in self._seen:
                del self._seen[value]  # re-inserted at the end: the dict stays oldest first
                self._seen[value] = now
                return value
            if len(self._seen) >= self.limit:
                oldest, seen_at = next(iter(self._seen.items()))
                if now - seen_at < self.forget_after:
                    self.overflowed += 1
                    with LabelCap._made_lock:
                        LabelCap.folds += 1
                    folded = True
                else:
                    del self._seen[oldest]
                    folded = False
            else:
                folded = False
            if not folded:
                self._seen[value] = now
                return value
        _FOLDS.log(logging.WARNING, f"cap:{id(self)}", "label cap full: new values are "
                   "counted as other", cap=self.name or "unnamed", limit=self.limit,
                   value=value, folded=self.overflowed)
        return OTHER

    def __len__(self) -> int:
        return len(self._seen)


def label_caps(owner: object, prefix: str, depth: int = 2) -> Iterator[LabelCap]:
    """The caps an object holds in its attributes (and theirs, ``depth`` levels down), each
    named ``prefix.attribute`` unless it has a name of its own."""
    for attribute, value in vars(owner).items() if hasattr(owner, "__dict__") else ():
        # Named only when it is a cap or leads to one: this walk runs on every scrape.
        if isinstance(value, LabelCap):
            if not value.name:
                value.name = f"{prefix}.{attribute.strip('_')}"
            yield value
        elif depth < 2:
            continue
        elif type(value).__module__.startswith("cachewatch."):
            yield from label_caps(value, f"{prefix}.{attribute.strip('_')}", depth - 1)
        elif isinstance(value, dict):
            yield from (cap for cap in value.values() if isinstance(cap, LabelCap))


class CapOverflow:
    """``cachewatch_label_overflow_total{family}`` for the caps of the given collectors, once
    a cap has folded a value (a cap that never bites adds no series)."""

    def __init__(self, collectors: Iterable[Any]) -> None:
        self.collectors = list(collectors)
        self._walked_after = -1  # ``LabelCap.made`` at the last walk
        self._caps: list[LabelCap] = []  # what that walk found, named

    def collect(self) -> Iterator[Any]:
        """The overflow counts as they are now. The walk over the collectors' attributes (a
        good part of a small scrape) runs again only when a cap was made since the last one or
        one that walk did not find has folded (a cap made on another thread and attached after
        the walk): the caps it found are kept, and a scrape reads their counts."""
        if not LabelCap.folds:
            return
        if LabelCap.made != self._walked_after or LabelCap.folds > self._known_folds():
            self._walked_after = LabelCap.made
            self._caps = [cap for collector in self.collectors
                          for cap in label_caps(collector, getattr(collector, "name", ""))]
        totals: dict[str, int] = {}
        for cap in self._caps:
            if cap.overflowed:
                totals[cap.name] = totals.get(cap.name, 0) + cap.overflowed
        out = Families()
        for family, count in sorted(totals.items()):
            out.add(contract.LABEL_OVERFLOW, {"family": family}, count)
        yield from out

    def _known_folds(self) -> int:
        return sum(cap.overflowed for cap in self._caps)
