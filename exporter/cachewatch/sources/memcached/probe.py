"""Active latency probe: times real ``version`` round trips to each target, in the background.

``version`` is used, not ``get``, on purpose: any key read moves ``get_hits`` or ``get_misses``
(and ``cmd_get``), so a probe that read keys would change the very hit rate it sits beside.
``version`` pays the same network, parsing and event-loop cost as a small ``get``, minus the
hash-table lookup. One task per target on the event loop, not a thread (as for Redis).
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from ... import contract
from ...health import Health
from .client import REASONS, Connections, classify
from .metrics import LAYER
from .settings import MemcachedTarget

log = logging.getLogger("cachewatch.memcached.probe")

COLLECTOR = "memcached_probe"
OP = "version"
_LE = [floatToGoString(edge) for edge in contract.LATENCY_BUCKETS] + ["+Inf"]


@dataclass
class _Buckets:
    """One target's round trips: counts per bucket (not cumulative) and their sum. Touched only
    on the event loop (the probe's task and the scrape), so it needs no lock."""

    counts: list[int] = field(default_factory=lambda: [0] * len(_LE))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(contract.LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for le, count in zip(_LE, self.counts, strict=True):
            running += count
            out.append((le, running))
        return out


class LatencyProbe:
    """One task per target, ``version`` every ``interval`` seconds into the contract histogram."""

    def __init__(self, targets: list[MemcachedTarget], interval: float, timeout: float,
                 health: Health, max_reply_bytes: int) -> None:
        self._targets = targets
        self._interval = interval
        self._timeout = timeout
        self._health = health
        self._connections = Connections(max_reply_bytes, size=len(targets) + 1)
        self._tasks: list[asyncio.Task[None]] = []
        # Series exist (at zero) before the first probe lands.
        self._buckets = {target.label: _Buckets() for target in targets}
        health.expect(COLLECTOR, [t.label for t in targets], REASONS, gates_readiness=False)

    def start(self) -> None:
        """Start one task per target on the running loop."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(target),
                                        name=f"cachewatch-memcached-probe-{target.label}")
                       for target in self._targets]

    def stop(self) -> None:
        """Cancel the tasks and close their connections."""
        for task in self._tasks:
            task.cancel()
        self._connections.close()

    async def _run(self, target: MemcachedTarget) -> None:
        buckets = self._buckets[target.label]
        deadline = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            deadline = max(deadline + self._interval, time.monotonic())
            try:
                async with asyncio.timeout(self._timeout):
                    connection = await self._connections.connection(target)
                    started = time.perf_counter()
                    await connection.version()
                    elapsed = time.perf_counter() - started
            except Exception as exc:
                reason, message = classify(exc)
                self._health.count_error(COLLECTOR, target.label, reason)
                log.debug("probe failed", extra={"target": target.label, "reason": reason,
                                                 "error": message})
                continue
            buckets.observe(elapsed)

    def families(self, names: Iterable[str]) -> Iterator[Metric]:
        """The histogram and the probe's error counters of the targets ``names``."""
        wanted = set(names)
        out = contract.Families()
        for name, buckets in self._buckets.items():
            if name in wanted:
                out.add_histogram(contract.CACHE_LATENCY,
                                  {"layer": LAYER, "cache": name, "op": OP},
                                  buckets.cumulative(), buckets.total)
        for target, reason, count in self._health.errors(COLLECTOR, wanted):
            out.add(contract.COLLECTOR_ERRORS,
                    {"collector": COLLECTOR, "target": target, "reason": reason}, count)
        yield from out
