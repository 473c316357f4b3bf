"""What the exporter knows of its own collectors: last read per target, errors, readiness.

Shared by the collectors (which write it), ``/readyz`` and the ``/`` page (which read it). A
broken source becomes a metric and one log line when its state changes, never a log per scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..metrics.cardinality import LabelCap

log = logging.getLogger("cachewatch.health")


@dataclass
class TargetState:
    """The latest read of one target by one collector."""

    collector: str
    target: str
    up: bool | None = None  # None: never read yet
    duration: float = 0.0
    reason: str | None = None
    message: str | None = None
    checked_at: float | None = None


class Health:
    """Thread-safe store of target states and ``cachewatch_collector_errors_total`` counts."""

    def __init__(self, target_cap: int = 500) -> None:
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str], TargetState] = {}
        self._errors: dict[tuple[str, str, str], int] = {}
        self._completed: set[str] = set()
        self._expected: set[str] = set()
        self.version = 0  # raised after every change to the error counts (``metrics.cached``)
        # /probe can name any address: cap how many distinct targets the counters remember.
        self._cap = LabelCap(target_cap)

    def expect(self, collector: str, targets: Iterable[str], reasons: Iterable[str], *,
               gates_readiness: bool = True) -> None:
        """Declare a collector's targets so its error counters exist at 0 from the first scrape.

        ``gates_readiness``: /readyz waits for this collector's first completed round.
        """
        reasons = tuple(reasons)
        with self._lock:
            if gates_readiness:
                self._expected.add(collector)
            for target in targets:
                if gates_readiness:
                    self._states.setdefault((collector, target), TargetState(collector, target))
                for reason in reasons:
                    self._errors.setdefault((collector, self._cap(target), reason), 0)
            self.version += 1

    def record(
        self,
        collector: str,
        target: str,
        *,
        up: bool,
        duration: float,
        reason: str | None = None,
        message: str | None = None,
        remember: bool = True,
    ) -> None:
        """Store one read; count it as an error if it failed; log only when up/down changes."""
        with self._lock:
            key = (collector, target)
            state = self._states.get(key)
            previous = state.up if state else None
            if remember:
                state = self._states.setdefault(key, TargetState(collector, target))
                state.up, state.duration, state.checked_at = up, duration, time.time()
                state.reason, state.message = reason, message
            if not up:
                label = self._cap(target)
                self._errors[(collector, label, reason or "other")] = (
                    self._errors.get((collector, label, reason or "other"), 0) + 1
                )
                self.version += 1
        if remember and previous is not up:
            if up:
                log.info("target is up", extra={"collector": collector, "target": target})
            else:
                log.warning(
                    "target is down",
                    extra={"collector": collector, "target": target, "reason": reason,
                           "error": message},
                )

    def count_error(self, collector: str, target: str, reason: str) -> None:
        """Count a failure that is not a scrape (a background probe, a webhook)."""
        with self._lock:
            key = (collector, self._cap(target), reason)
            self._errors[key] = self._errors.get(key, 0) + 1
            self.version += 1

    def completed(self, collector: str) -> None:
        """Mark that ``collector`` finished one full round (used by /readyz)."""
        with self._lock:
            self._completed.add(collector)

    def readiness(self) -> dict[str, bool]:
        """Each expected collector and whether it has completed a round yet."""
        with self._lock:
            return {name: name in self._completed for name in sorted(self._expected)}

    def states(self) -> list[TargetState]:
        """Copies of every known target state, sorted for display."""
        with self._lock:
            return [TargetState(**vars(s)) for _, s in sorted(self._states.items())]

    def errors(self, collector: str, targets: Iterable[str] | None = None) -> list[
        tuple[str, str, int]
    ]:
        """``(target, reason, count)`` for one collector, optionally only some targets."""
        wanted = None if targets is None else set(targets)
        with self._lock:
            return [
                (target, reason, count)
                for (name, target, reason), count in sorted(self._errors.items())
                if name == collector and (wanted is None or target in wanted)
            ]
