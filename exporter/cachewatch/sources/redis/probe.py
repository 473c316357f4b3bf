"""Active latency probe: times real PING round trips to each Redis target, in the background.

PING is used, not GET, on purpose: any key read (GET, EXISTS, TYPE) moves ``keyspace_hits`` or
``keyspace_misses``, so a probe that read keys would change the very hit rate it sits beside.
A PING pays the same network, parsing and event-loop cost as a small GET, minus the key lookup.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator

from prometheus_client import Histogram
from prometheus_client.metrics_core import Metric

from ... import contract
from ...contract import Layer
from ...health import Health
from .settings import RedisTarget
from .targets import DEFAULT_MAX_REPLY_BYTES, REASONS, ClientCache, classify

log = logging.getLogger("cachewatch.redis.probe")

COLLECTOR = "redis_probe"
OP = "ping"


class LatencyProbe:
    """One thread per target, PING every ``interval`` seconds into the contract histogram."""

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
        self._health = health
        # Own connections: a PING must not queue behind a scrape's INFO on a shared socket.
        self._clients = ClientCache(timeout, max_reply_bytes, size=len(targets) + 1)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        spec = contract.CACHE_LATENCY
        self._histogram = Histogram(spec.name, spec.help, spec.labels,
                                    buckets=contract.LATENCY_BUCKETS, registry=None)
        for target in targets:  # series exist (at zero) before the first probe lands
            self._histogram.labels(Layer.REDIS.value, target.name, OP)
        health.expect(COLLECTOR, [t.name or "" for t in targets], REASONS, gates_readiness=False)

    def start(self) -> None:
        """Start one daemon thread per target."""
        for target in self._targets:
            thread = threading.Thread(target=self._run, args=(target,), daemon=True,
                                      name=f"cachewatch-probe-{target.name}")
            thread.start()
            self._threads.append(thread)
        log.info("latency probe started",
                 extra={"targets": len(self._targets), "interval_s": self._interval, "op": OP})

    def stop(self) -> None:
        """Stop the threads; each finishes its current PING (bounded by the socket timeout)."""
        self._stop.set()
        deadline = time.monotonic() + 5
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._clients.close()

    def _run(self, target: RedisTarget) -> None:
        child = self._histogram.labels(Layer.REDIS.value, target.name, OP)
        client = self._clients.get(target)
        deadline = time.monotonic()
        while not self._stop.wait(max(0.0, deadline - time.monotonic())):
            deadline = max(deadline + self._interval, time.monotonic())
            started = time.perf_counter()
            try:
                client.ping()
            except Exception as exc:
                reason, message = classify(exc)
                self._health.count_error(COLLECTOR, target.name or "", reason)
                log.debug("probe failed", extra={"target": target.name, "reason": reason,
                                                 "error": message})
                continue
            child.observe(time.perf_counter() - started)

    def families(self, names: Iterable[str] | None = None) -> Iterator[Metric]:
        """The histogram (and probe error counters), optionally only for some targets."""
        wanted = None if names is None else set(names)
        for metric in self._histogram.collect():
            metric.samples = [
                s for s in metric.samples
                if not s.name.endswith("_created")
                and (wanted is None or s.labels.get("cache") in wanted)
            ]
            yield metric
        errors = contract.Families()
        for target, reason, count in self._health.errors(COLLECTOR, wanted):
            errors.add(contract.COLLECTOR_ERRORS,
                       {"collector": COLLECTOR, "target": target, "reason": reason}, count)
        yield from errors
