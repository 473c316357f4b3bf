"""The shape every pulling collector shares: read all targets in parallel under a deadline.

A collector subclass only says how to read one target and how to name a failure. This class runs
the reads, turns a slow target into ``up=0 reason=timeout`` at the deadline without waiting for
it, and emits the self-metrics. Reads are blocking calls on worker threads (``TargetCollector``:
any client library will do) or coroutines on the event loop (``AsyncTargetCollector``: no thread
between a scrape and its answer, the cheaper path for a source read on every scrape).
"""

from __future__ import annotations

import asyncio
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import Any, ClassVar

from prometheus_client.metrics_core import Metric

from ..metrics import contract
from ..metrics.contract import Families
from ..runtime import Runtime
from ..source import Source


class DeadlineExceeded(TimeoutError):
    """A read was stopped at its deadline (not a timeout the client library reported)."""


class BaseTargetCollector(Source, ABC):
    """A source that reads named targets, concurrently, on each scrape."""
    # Failure reasons this collector can report; their counters start at 0 for every target.
    reasons: ClassVar[tuple[str, ...]] = ("timeout", "connection", "other")

    def __init__(self, runtime: Runtime, timeout: float, *, remember: bool = True,
                 probe: bool = False) -> None:
        """``probe``: a ``/probe`` collector. ``remember=False``: an unlisted ``/probe``
        address, kept out of the status page."""
        self.runtime = runtime
        self.health = runtime.health
        self.timeout = timeout
        self._remember = remember
        self._is_probe = probe or not remember

    @abstractmethod
    def targets(self) -> Sequence[str]:
        """Names of the targets to read; each becomes the ``target`` self-metric label."""

    @abstractmethod
    def classify(self, exc: BaseException) -> tuple[str, str]:
        """``(reason, message)`` for a failed read; the message must not hold secrets."""

    @abstractmethod
    async def collect_async(self) -> list[Metric]:
        """``collect`` for the event loop: must not block it."""

    def standing(self) -> Iterable[Metric]:
        """Families kept between scrapes (for example a probe's histogram); none by default."""
        return ()

    def _settle_all(self, futures: dict[str, Any], started: float) -> Families:
        """Every target's outcome, the self-metrics and the standing families."""
        names = list(futures)
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
        return out

    def _settle(self, name: str, future: Any, waited: float, out: Families) -> tuple[float, float]:
        """Fold one target's outcome (a finished or pending ``Future`` or ``asyncio.Task``) into
        ``out`` and the health store; return (up, seconds)."""
        exc = None
        if future.done():
            exc = DeadlineExceeded() if future.cancelled() else future.exception()
        if not future.done() or isinstance(exc, DeadlineExceeded):
            self.health.record(self.name, name, up=False, duration=waited, reason="timeout",
                               message=f"no answer within {self.timeout:g}s",
                               remember=self._remember)
            return 0.0, waited
        if exc is not None:
            reason, message = self.classify(exc)
            self.health.record(self.name, name, up=False, duration=waited, reason=reason,
                               message=message, remember=self._remember)
            return 0.0, waited
        families, duration = future.result()
        out.extend(families)
        self.health.record(self.name, name, up=True, duration=duration, remember=self._remember)
        return 1.0, duration


class TargetCollector(BaseTargetCollector):
    """Targets read by blocking calls (any client library) on worker threads."""

    def __init__(self, runtime: Runtime, timeout: float, *, remember: bool = True,
                 probe_of: TargetCollector | None = None) -> None:
        """``probe_of``: the main collector a ``/probe`` collector reads a configured target
        for; they share in-flight reads. Unlisted ``/probe`` addresses read on the probe pool."""
        super().__init__(runtime, timeout, remember=remember, probe=probe_of is not None)
        self._pool = runtime.reads if remember else runtime.probe_reads
        if probe_of is not None:
            self._inflight, self._lock = probe_of._inflight, probe_of._lock
        else:
            self._inflight: dict[str, Future[tuple[Families, float]]] = {}
            self._lock = threading.Lock()

    @abstractmethod
    def read(self, target: str) -> Families:
        """Read one target (blocking) and return its families; raise on failure."""

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
        started = time.perf_counter()
        futures = {name: self._submit(name) for name in self.targets()}
        wait_futures(futures.values(), timeout=self.timeout)
        yield from self._settle_all(futures, started)

    async def collect_async(self) -> list[Metric]:
        """``collect`` from the event loop: the blocking reads stay on worker threads."""
        return await asyncio.get_running_loop().run_in_executor(
            self.runtime.collects, lambda: list(self.collect()))


class AsyncTargetCollector(BaseTargetCollector):
    """Targets read by coroutines on the event loop (``read_async``): no thread between a scrape
    and its answer.

    Each read is a task bounded by the deadline, shared by scrapes that overlap (an HA pair of
    Prometheus servers), and cancelled at the deadline, so a hung target holds nothing past it.
    ``collect()`` (outside the loop: tests, one-off renders) runs the same reads on the serving
    loop when there is one, else on a loop of its own.
    """

    def __init__(self, runtime: Runtime, timeout: float, *, remember: bool = True,
                 probe_of: AsyncTargetCollector | None = None) -> None:
        super().__init__(runtime, timeout, remember=remember, probe=probe_of is not None)
        self._tasks: dict[str, asyncio.Task[tuple[Families, float]]] = (
            probe_of._tasks if probe_of is not None else {})
        self._main = probe_of
        self._loop: asyncio.AbstractEventLoop | None = None

    @abstractmethod
    async def read_async(self, target: str) -> Families:
        """Read one target and return its families; raise on failure."""

    def close_loop(self) -> None:
        """Release what reads opened on a loop of their own (``collect`` outside a server).
        Nothing by default."""

    def start(self) -> None:
        """Remember the serving loop, so ``collect()`` from other threads can use it."""
        self._loop = asyncio.get_running_loop()

    @property
    def serving_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop ``start()`` ran on (the main collector's, for a ``/probe`` one)."""
        return (self._main or self)._loop

    def _task(self, target: str) -> asyncio.Task[tuple[Families, float]]:
        loop = asyncio.get_running_loop()
        task = self._tasks.get(target)
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._timed(target))
            # The outcome is read by whoever waits in time; one that waited less must not leave
            # it "never retrieved".
            task.add_done_callback(_retrieve)
            if loop is self.serving_loop:
                self._tasks[target] = task
        return task

    async def _timed(self, target: str) -> tuple[Families, float]:
        started = time.perf_counter()
        deadline = asyncio.timeout(self.timeout)
        try:
            async with deadline:
                families = await self.read_async(target)
        except TimeoutError:
            if deadline.expired():
                raise DeadlineExceeded() from None
            raise  # the system's own timeout (a connect that the kernel gave up on)
        return families, time.perf_counter() - started

    async def collect_async(self) -> list[Metric]:
        """Read every target at once on the loop; wait at most ``timeout`` for all of them."""
        started = time.perf_counter()
        tasks = {name: self._task(name) for name in self.targets()}
        if tasks:
            await asyncio.wait(tasks.values(), timeout=self.timeout)
        return list(self._settle_all(tasks, started))

    def collect(self) -> Iterator[Metric]:
        """``collect_async`` for a caller outside the event loop."""
        loop = self.serving_loop
        if loop is not None and loop.is_running():
            return iter(asyncio.run_coroutine_threadsafe(self.collect_async(), loop).result())

        async def on_own_loop() -> list[Metric]:
            try:
                return await self.collect_async()
            finally:
                self.close_loop()

        return iter(asyncio.run(on_own_loop()))


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
