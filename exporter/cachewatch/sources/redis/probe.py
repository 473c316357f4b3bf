"""Active latency probe: times real PING round trips to each Redis target, in the background.

PING is used, not GET, on purpose: any key read (GET, EXISTS, TYPE) moves ``keyspace_hits`` or
``keyspace_misses``, so a probe that read keys would change the very hit rate it sits beside.
A PING pays the same network, parsing and event-loop cost as a small GET, minus the key lookup.
The tasks, buckets and exposition are the core's (``collectors.latency_probe``).
"""

from __future__ import annotations

import logging
import time

from ...collectors.health import Health
from ...collectors.latency_probe import LatencyProbe
from . import contract
from .client import REASONS, ClientCache, classify
from .settings import DEFAULT_MAX_REPLY_BYTES, RedisTarget


class RedisProbe(LatencyProbe[RedisTarget]):
    """PING every ``interval`` seconds per target, on connections of its own."""

    collector = "redis_probe"
    layer = contract.LAYER
    op = "ping"
    reasons = REASONS
    log = logging.getLogger("cachewatch.redis.probe")

    def __init__(self, targets: list[RedisTarget], interval: float, timeout: float,
                 health: Health, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES) -> None:
        # Own connections: a PING must not queue behind a scrape's INFO on a shared socket.
        self._clients = ClientCache(max_reply_bytes, size=len(targets) + 1)
        super().__init__({t.name or "": t for t in targets}, interval, timeout, health)

    async def round_trip(self, target: RedisTarget) -> float:
        connection = await self._clients.connection(target)
        started = time.perf_counter()
        await connection.call(("PING",))
        return time.perf_counter() - started

    def classify(self, exc: BaseException) -> tuple[str, str]:
        return classify(exc)

    def release(self) -> None:
        self._clients.close()
