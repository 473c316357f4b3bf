"""What lives as long as the application: the health store, the state store and the worker pools,
closed on shutdown.

Collectors that block on sockets (``TargetCollector``) read in worker threads, never on the event
loop; collectors on asyncio (``AsyncTargetCollector``) need no thread at all. The
pools are separate on purpose: a collector worker waits on read workers, never on its own pool,
so they cannot deadlock one another; and ``/probe`` traffic has a pool of its own, so a flood of
probes to hung addresses never queues ``/metrics`` behind it. Threads start only when needed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .collectors.health import Health
from .http.budget import BodyBudget
from .http.refusals import HTTP_CAUSES, RefusalLog
from .state import MemoryStore, State

DEFAULT_BODY_BUDGET = 64 * 1024 * 1024


class Runtime:
    """The shared machinery a source's collectors are built with.

    ``state`` is where receivers keep what they acknowledge (``state.open_state``); without
    one, state lives in memory only.
    """

    def __init__(self, health: Health | None = None, state: State | None = None,
                 body_budget: int = DEFAULT_BODY_BUDGET) -> None:
        self.health = health or Health()
        # Requests and connections the HTTP layer refused (auth, limits): counted and logged.
        self.refusals = RefusalLog(causes=HTTP_CAUSES)
        # Request bodies every receiver together holds (web.max_inflight_body_bytes).
        self.bodies = BodyBudget(body_budget, self.refusals)
        self.state = state or State(MemoryStore(), replica="memory")
        self.state.health = self.health
        # A read that hangs past its deadline keeps its worker until its own socket timeout, so
        # the pool is sized for some of those. Threads start only when first needed.
        self.reads = ThreadPoolExecutor(max_workers=64, thread_name_prefix="cachewatch-read")
        self.probe_reads = ThreadPoolExecutor(max_workers=16,
                                              thread_name_prefix="cachewatch-probe-read")
        self.collects = ThreadPoolExecutor(max_workers=16,
                                           thread_name_prefix="cachewatch-collect")

    def close(self) -> None:
        """Commit queued state and close the store; stop every pool (reads still hanging are
        left to their own socket timeouts)."""
        self.state.close()
        for pool in (self.collects, self.reads, self.probe_reads):
            pool.shutdown(wait=False, cancel_futures=True)
