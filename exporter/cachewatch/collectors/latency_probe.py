"""An active latency probe: times real round trips to each target in the background, into the
core latency histogram (``cachewatch_cache_latency_seconds``, client-observed, network included);
and ``ProbedCollector``, the target collector that owns one.

A source that reads a remote cache subclasses ``LatencyProbe`` with the one command it times,
chosen so it reads no key: a probe that moved the hit and miss counters would change the very
hit rate it sits beside. One task per target on the event loop, not a thread: a coroutine costs
a few kilobytes where a thread costs its stack, and the loop is idle between scrapes, so the
timing is the round trip. Values are read at scrape time (``families``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from ..metrics import contract
from ..metrics.cached import CachedFamilies
from .health import Health
from .target_collector import AsyncTargetCollector

if TYPE_CHECKING:
    from ..runtime import Runtime

Target = TypeVar("Target")
_LE = [floatToGoString(edge) for edge in contract.LATENCY_BUCKETS] + ["+Inf"]


@dataclass
class LatencyBuckets:
    """One target's round trips: counts per bucket (not cumulative) and their sum. Touched only
    on the event loop (the probe's task and the scrape), so it needs no lock."""

    counts: list[int] = field(default_factory=lambda: [0] * len(_LE))
    total: float = 0.0
    version: int = 0  # raised after every round trip counted (``metrics.cached``)

    def observe(self, seconds: float) -> None:
        """Count one round trip of ``seconds``."""
        self.counts[bisect_left(contract.LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds
        self.version += 1

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs, cumulative, ending with ``+Inf``."""
        out, running = [], 0
        for le, count in zip(_LE, self.counts, strict=True):
            running += count
            out.append((le, running))
        return out


class LatencyProbe(ABC, Generic[Target]):
    """One task per target, ``round_trip`` every ``interval`` seconds into the histogram.

    A subclass names its ``collector`` (the self-metrics' label of its errors), ``layer``, ``op``
    (the command timed), failure ``reasons`` and ``log``, and implements ``round_trip``,
    ``classify`` and ``release``.
    """

    collector: ClassVar[str]
    layer: ClassVar[str]
    op: ClassVar[str]
    reasons: ClassVar[tuple[str, ...]]
    log: ClassVar[logging.Logger]

    def __init__(self, targets: Mapping[str, Target], interval: float, timeout: float,
                 health: Health) -> None:
        self._targets = dict(targets)
        self._interval = interval
        self._timeout = timeout
        self._health = health
        self._tasks: list[asyncio.Task[None]] = []
        # Series exist (at zero) before the first probe lands.
        self._buckets = {name: LatencyBuckets() for name in self._targets}
        self._cached = CachedFamilies()
        health.expect(self.collector, self._targets, self.reasons, gates_readiness=False)

    @abstractmethod
    async def round_trip(self, target: Target) -> float:
        """Seconds one timed command took on ``target``, connecting first if needed (outside
        the timing); raise on failure. Runs under the probe's deadline."""

    @abstractmethod
    def classify(self, exc: BaseException) -> tuple[str, str]:
        """``(reason, message)`` for a failed round trip; the message must not hold secrets."""

    @abstractmethod
    def release(self) -> None:
        """Close the probe's connections."""

    def start(self) -> None:
        """Start one task per target on the running loop."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(name, target),
                                        name=f"cachewatch-{self.collector}-{name}")
                       for name, target in self._targets.items()]
        self.log.debug("latency probe started", extra={
            "targets": len(self._targets), "interval_s": self._interval, "op": self.op})

    def stop(self) -> None:
        """Cancel the tasks and close their connections."""
        for task in self._tasks:
            task.cancel()
        self.release()

    async def _run(self, name: str, target: Target) -> None:
        buckets = self._buckets[name]
        deadline = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            deadline = max(deadline + self._interval, time.monotonic())
            try:
                async with asyncio.timeout(self._timeout):
                    elapsed = await self.round_trip(target)
            except Exception as exc:
                reason, message = self.classify(exc)
                self._health.count_error(self.collector, name, reason)
                self.log.debug("probe failed", extra={"target": name, "reason": reason,
                                                      "error": message})
                continue
            buckets.observe(elapsed)

    def families(self, names: Iterable[str] | None = None) -> Iterator[Metric]:
        """The histogram and the probe's error counters, optionally only for some targets;
        made again only after a round trip or an error (``metrics.cached``)."""
        wanted = None if names is None else tuple(names)
        version = (wanted, self._health.version,
                   *(buckets.version for buckets in self._buckets.values()))
        return iter(self._cached.get(version, lambda: self._families(wanted)))

    def _families(self, names: tuple[str, ...] | None) -> contract.Families:
        wanted = None if names is None else set(names)
        out = contract.Families()
        for name, buckets in self._buckets.items():
            if wanted is None or name in wanted:
                out.add_histogram(contract.CACHE_LATENCY,
                                  {"layer": self.layer, "cache": name, "op": self.op},
                                  buckets.cumulative(), buckets.total)
        for target, reason, count in self._health.errors(self.collector, wanted):
            out.add(contract.COLLECTOR_ERRORS,
                    {"collector": self.collector, "target": target, "reason": reason}, count)
        return out


class ProbedCollector(AsyncTargetCollector):
    """A target collector read on the event loop with an optional ``LatencyProbe`` beside it,
    whose histogram it exports on every scrape (``standing``).

    Only the main collector (``owner``) starts and stops the probe and closes the connections;
    the ``/probe`` collectors it makes borrow them. A subclass says what to log of its targets
    (``described``) and which connections it owns (``release``).
    """

    def __init__(self, runtime: Runtime, timeout: float, *, probe: LatencyProbe[Any] | None,
                 owner: bool, remember: bool = True,
                 probe_of: AsyncTargetCollector | None = None) -> None:
        super().__init__(runtime, timeout, remember=remember, probe_of=probe_of)
        self._probe = probe
        self._owner = owner

    @abstractmethod
    def described(self) -> str:
        """The targets for the start-up log line (``name=address,...``), without secrets."""

    @abstractmethod
    def release(self) -> None:
        """Close every connection this collector opened (its own and its ``/probe`` ones)."""

    def standing(self) -> Iterable[Metric]:
        if self._probe is None:
            return ()
        return self._probe.families(self.targets())

    def start(self) -> None:
        super().start()
        if not self._owner:
            return
        logging.getLogger(f"cachewatch.{self.name}").info(
            f"reading {self.name} targets",
            extra={"targets": self.described(), "latency_probe": self._probe is not None})
        if self._probe is not None:
            self._probe.start()

    def close(self) -> None:
        if not self._owner:
            return
        if self._probe is not None:
            self._probe.stop()
        self.release()
