"""Bounded label values for anything named from outside (targets, repositories, caches).

Prometheus keeps every distinct label set as a series forever-ish; a label fed by webhooks or
query strings must not grow without bound, so past a cap new values fold into ``other``. Every
value is made safe (``labels.safe_label``) before it is counted, so a cap is also the point
where an outside string becomes a label value that can always be encoded.
"""

from __future__ import annotations

import threading

from .labels import safe_label

OTHER = "other"


class LabelCap:
    """Admits the first ``limit`` distinct values; later new ones become ``other``.

    Values already admitted keep their own series, so existing dashboards stay stable when the
    cap is reached; ``overflowed`` counts folded lookups so the cap itself can be alerted on.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the cap must admit at least one value")
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.overflowed = 0

    def __call__(self, value: str) -> str:
        value = safe_label(value)
        if value in self._seen:
            return value
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
            self.overflowed += 1
            return OTHER

    def __len__(self) -> int:
        return len(self._seen)
