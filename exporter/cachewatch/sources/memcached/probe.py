"""Active latency probe: times real ``version`` round trips to each target, in the background.

``version`` is used, not ``get``, on purpose: any key read moves ``get_hits`` or ``get_misses``
(and ``cmd_get``), so a probe that read keys would change the very hit rate it sits beside.
``version`` pays the same network, parsing and event-loop cost as a small ``get``, minus the
hash-table lookup. The tasks, buckets and exposition are the core's
(``collectors.latency_probe``).
"""

from __future__ import annotations

import logging
import time

from ...collectors.health import Health
from ...collectors.latency_probe import LatencyProbe
from . import contract
from .client import REASONS, Connections, classify
from .settings import MemcachedTarget

OP = "version"


class MemcachedProbe(LatencyProbe[MemcachedTarget]):
    """``version`` every ``interval`` seconds per target, on connections of its own."""

    collector = "memcached_probe"
    layer = contract.LAYER
    op = OP
    reasons = REASONS
    log = logging.getLogger("cachewatch.memcached.probe")

    def __init__(self, targets: list[MemcachedTarget], interval: float, timeout: float,
                 health: Health, max_reply_bytes: int) -> None:
        # Own connections: a probe must not queue behind a scrape's stats on a shared socket.
        self._connections = Connections(max_reply_bytes, size=len(targets) + 1)
        super().__init__({t.label: t for t in targets}, interval, timeout, health)

    async def round_trip(self, target: MemcachedTarget) -> float:
        connection = await self._connections.connection(target)
        started = time.perf_counter()
        await connection.version()
        return time.perf_counter() - started

    def classify(self, exc: BaseException) -> tuple[str, str]:
        return classify(exc)

    def release(self) -> None:
        self._connections.close()
