"""The shape every pulling collector shares: read all targets in parallel under a deadline.

A collector subclass only says how to read one target (blocking I/O is fine: it runs in a worker
thread) and how to name a failure. This class runs the reads, turns a slow target into
``up=0 reason=timeout`` at the deadline without waiting for it, and emits the self-metrics.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import ClassVar

from prometheus_client.metrics_core import Metric

from . import contract
from .contract import Families
from .runtime import Runtime
from .source import Source


class TargetCollector(Source, ABC):
    """A source that reads named targets, concurrently, on each scrape."""
    # Failure reasons this collector can report; their counters start at 0 for every target.
    reasons: ClassVar[tuple[str, ...]] = ("timeout", "connection", "other")

    def __init__(self, runtime: Runtime, timeout: float, *, remember: bool = True,
                 probe_of: TargetCollector | None = None) -> None:
        """``probe_of``: the main collector a ``/probe`` collector reads a configured target
        for; they share in-flight reads. ``remember=False``: an unlisted ``/probe`` address,
        kept out of the status page and read on the probe pool."""
        self.runtime = runtime
        self.health = runtime.health
        self.timeout = timeout
        self._remember = remember
        self._is_probe = probe_of is not None or not remember
        self._pool = runtime.reads if remember else runtime.probe_reads
        if probe_of is not None:
            self._inflight, self._lock = probe_of._inflight, probe_of._lock
        else:
            self._inflight = {}
            self._lock = threading.Lock()

    @abstractmethod
    def targets(self) -> Sequence[str]:
        """Names of the targets to read; each becomes the ``target`` self-metric label."""

    @abstractmethod
    def read(self, target: str) -> Families:
        """Read one target (blocking) and return its families; raise on failure."""

    @abstractmethod
    def classify(self, exc: BaseException) -> tuple[str, str]:
        """``(reason, message)`` for a failed read; the message must not hold secrets."""

    def standing(self) -> Iterable[Metric]:
        """Families kept between scrapes (for example a probe's histogram); none by default."""
        return ()

    def _submit(self, target: str) -> Future[tuple[Families, float]]:
        # Two scrapes arriving together (an HA pair of Prometheus servers) share one read, and a
        # target whose previous read still hangs is not read again on top of it.
        with self._lock:
            future = self._inflight.get(target)
            if future is None or future.done():
                future = self._pool.submit(self._timed_read, target)
                self._inflight[target] = future
            return future

    def _timed_read(self, target: str) -> tuple[Families, float]:
        start = time.perf_counter()
        families = self.read(target)
        return families, time.perf_counter() - start

    def collect(self) -> Iterator[Metric]:
        """Read every target at once; wait at most ``timeout`` for all of them together."""
        names = list(self.targets())
        started = time.perf_counter()
        futures = {name: self._submit(name) for name in names}
        wait_futures(futures.values(), timeout=self.timeout)
        out = Families()
        for name, future in futures.items():
            up, duration = self._settle(name, future, time.perf_counter() - started, out)
            out.add(contract.COLLECTOR_UP, {"collector": self.name, "target": name}, up)
            out.add(contract.COLLECTOR_DURATION, {"collector": self.name, "target": name},
                    duration)
        for target, reason, count in self.health.errors(self.name, names):
            out.add(contract.COLLECTOR_ERRORS,
                    {"collector": self.name, "target": target, "reason": reason}, count)
        out.extend(self.standing())
        if not self._is_probe:  # /readyz is about the configured targets, not /probe traffic
            self.health.completed(self.name)
        yield from out

    def _settle(self, name: str, future: Future[tuple[Families, float]], waited: float,
                out: Families) -> tuple[float, float]:
        """Fold one target's outcome into ``out`` and the health store; return (up, seconds)."""
        if not future.done():
            self.health.record(self.name, name, up=False, duration=waited, reason="timeout",
                               message=f"no answer within {self.timeout:g}s",
                               remember=self._remember)
            return 0.0, waited
        exc = future.exception()
        if exc is not None:
            reason, message = self.classify(exc)
            self.health.record(self.name, name, up=False, duration=waited, reason=reason,
                               message=message, remember=self._remember)
            return 0.0, waited
        families, duration = future.result()
        out.extend(families)
        self.health.record(self.name, name, up=True, duration=duration, remember=self._remember)
        return 1.0, duration
