"""Active latency probe: times real PING round trips to each Redis target, in the background.

PING is used, not GET, on purpose: any key read (GET, EXISTS, TYPE) moves ``keyspace_hits`` or
``keyspace_misses``, so a probe that read keys would change the very hit rate it sits beside.
A PING pays the same network, parsing and event-loop cost as a small GET, minus the key lookup.

One task per target on the event loop, not a thread: a coroutine costs a few kilobytes where a
thread costs its stack, and the loop is idle between scrapes, so the timing is the round trip.
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

from ...collectors.health import Health
from . import contract
from .client import REASONS, ClientCache, classify
from .settings import DEFAULT_MAX_REPLY_BYTES, RedisTarget

log = logging.getLogger("cachewatch.redis.probe")

COLLECTOR = "redis_probe"
OP = "ping"
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
    """One task per target, PING every ``interval`` seconds into the contract histogram."""

    def __init__(
        self,
        targets: list[RedisTarget],
        interval: float,
        timeout: float,
        health: Health,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        self._targets = targets
        self._interval = interval
        self._timeout = timeout
        self._health = health
        # Own connections: a PING must not queue behind a scrape's INFO on a shared socket.
        self._clients = ClientCache(max_reply_bytes, size=len(targets) + 1)
        self._tasks: list[asyncio.Task[None]] = []
        # Series exist (at zero) before the first probe lands.
        self._buckets = {target.name or "": _Buckets() for target in targets}
        health.expect(COLLECTOR, [t.name or "" for t in targets], REASONS, gates_readiness=False)

    def start(self) -> None:
        """Start one task per target on the running loop."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(target), name=f"cachewatch-probe-{target.name}")
                       for target in self._targets]
        log.debug("latency probe started",
                  extra={"targets": len(self._targets), "interval_s": self._interval, "op": OP})

    def stop(self) -> None:
        """Cancel the tasks and close their connections."""
        for task in self._tasks:
            task.cancel()
        self._clients.close()

    async def _run(self, target: RedisTarget) -> None:
        buckets = self._buckets[target.name or ""]
        deadline = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            deadline = max(deadline + self._interval, time.monotonic())
            try:
                async with asyncio.timeout(self._timeout):
                    connection = await self._clients.connection(target)
                    started = time.perf_counter()
                    await connection.call(("PING",))
                    elapsed = time.perf_counter() - started
            except Exception as exc:
                reason, message = classify(exc)
                self._health.count_error(COLLECTOR, target.name or "", reason)
                log.debug("probe failed", extra={"target": target.name, "reason": reason,
                                                 "error": message})
                continue
            buckets.observe(elapsed)

    def families(self, names: Iterable[str] | None = None) -> Iterator[Metric]:
        """The histogram (and probe error counters), optionally only for some targets."""
        wanted = None if names is None else set(names)
        out = contract.Families()
        for name, buckets in self._buckets.items():
            if wanted is None or name in wanted:
                out.add_histogram(contract.CACHE_LATENCY,
                                  {"layer": contract.LAYER, "cache": name, "op": OP},
                                  buckets.cumulative(), buckets.total)
        for target, reason, count in self._health.errors(COLLECTOR, wanted):
            out.add(contract.COLLECTOR_ERRORS,
                    {"collector": COLLECTOR, "target": target, "reason": reason}, count)
        yield from out
