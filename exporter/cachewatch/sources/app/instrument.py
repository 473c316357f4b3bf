"""Instrument in-process Python caches with cachewatch's metric contract (``layer="app"``).

Three ways in, cheapest first:

* ``functools.lru_cache``: :func:`cached` (a drop-in decorator) or :func:`instrument_lru`.
  Zero cost per call: the counts are read from ``cache_info()`` when metrics are collected.
* a cachetools cache: :func:`instrument_cachetools` counts hits, misses and evictions.
* anything else: a :class:`CacheStats` whose ``hit()``/``miss()``/``load()``/``eviction()``
  your own code calls.

Then either expose them in your app's own prometheus_client registry (:meth:`Caches.register`)
or push them to a cachewatch exporter on an interval (:meth:`Caches.push_to`), in a daemon
thread that never raises into, and never blocks, your app.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
import urllib.request
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ...metrics.contract import Families
from . import contract

log = logging.getLogger("cachewatch.instrument")
F = TypeVar("F", bound=Callable[..., Any])
_LE = [*(repr(float(b)) for b in contract.LATENCY_BUCKETS), "+Inf"]


class CacheStats:
    """Cumulative counters of one cache. Increments are plain int additions under the GIL."""

    def __init__(self, name: str, *, parent: str | None = None, parent_layer: str = "app",
                 size: Callable[[], int] | None = None) -> None:
        self.name = name
        self.parent = parent
        self.parent_layer = parent_layer
        self._size = size
        self.hits = self.misses = self.evictions = self.eviction_weight = 0
        self.load_success = self.load_failure = self.load_ns = self.puts = 0
        self._latency: dict[str, list[float]] = {}  # op -> bucket counts..., sum last

    def hit(self, count: int = 1) -> None:
        self.hits += count

    def miss(self, count: int = 1) -> None:
        self.misses += count

    def eviction(self, weight: int = 1) -> None:
        self.evictions += 1
        self.eviction_weight += weight

    def load(self, seconds: float, ok: bool = True) -> None:
        """A value loaded after a miss, and how long it took."""
        if ok:
            self.load_success += 1
        else:
            self.load_failure += 1
        if 0 <= seconds < 1e6:  # NaN, inf or a negative clock step are not a duration
            self.load_ns += int(seconds * 1e9)

    def observe(self, seconds: float, op: str = "get") -> None:
        """A lookup's latency, into the contract buckets (50 ms is an edge)."""
        if not 0 <= seconds < 1e6:
            return
        counts = self._latency.get(op)
        if counts is None:
            counts = self._latency[op] = [0.0] * (len(_LE) + 1)
        counts[bisect_left(contract.LATENCY_BUCKETS, seconds)] += 1
        counts[-1] += seconds

    def read(self) -> None:
        """Refresh counters kept elsewhere (``cache_info()``); nothing for a plain CacheStats."""

    def size(self) -> int | None:
        return self._size() if self._size is not None else None

    def payload(self) -> dict[str, Any]:
        """This cache in the push API's shape (Caffeine ``CacheStats`` names)."""
        self.read()
        body: dict[str, Any] = {
            "name": self.name,
            "stats": {"hitCount": self.hits, "missCount": self.misses,
                      "loadSuccessCount": self.load_success,
                      "loadFailureCount": self.load_failure, "totalLoadTime": self.load_ns,
                      "evictionCount": self.evictions, "evictionWeight": self.eviction_weight},
        }
        if (size := self.size()) is not None:
            body["size"] = size
        if self.parent is not None:
            body["parent"], body["parent_layer"] = self.parent, self.parent_layer
        latency = []
        for op, counts in list(self._latency.items()):  # observe() may add an op meanwhile
            counts = list(counts)
            running, buckets = 0.0, {}
            for le, count in zip(_LE, counts[:-1], strict=True):
                running += count
                buckets[le] = running
            latency.append({"op": op, "buckets": buckets, "sum": counts[-1]})
        if latency:
            body["latency"] = latency
        return body


class _LruStats(CacheStats):
    """Counters of an ``lru_cache`` function, read from ``cache_info()`` only when needed."""

    def __init__(self, func: Any, name: str, **kwargs: Any) -> None:
        super().__init__(name, size=lambda: func.cache_info().currsize, **kwargs)
        self._func = func

    def read(self) -> None:
        info = self._func.cache_info()
        self.hits, self.misses = info.hits, info.misses
        # lru_cache evicts silently: beyond maxsize, every miss after the cache filled evicts.
        if info.maxsize is not None:
            self.evictions = self.eviction_weight = max(0, info.misses - info.maxsize)


class Caches:
    """A set of instrumented caches; expose them, push them, or both."""

    def __init__(self) -> None:
        self._caches: dict[str, CacheStats] = {}
        self._lock = threading.Lock()

    def add(self, stats: CacheStats) -> CacheStats:
        with self._lock:
            if stats.name in self._caches:
                raise ValueError(f"a cache named {stats.name!r} is already instrumented")
            self._caches[stats.name] = stats
        return stats

    def __getitem__(self, name: str) -> CacheStats:
        return self._caches[name]

    def __iter__(self) -> Iterator[CacheStats]:
        with self._lock:
            return iter(list(self._caches.values()))

    # --- exposition in the app's own registry ----------------------------------------------
    def collect(self) -> Iterator[Any]:
        """prometheus_client collector protocol: the contract families, ``layer="app"``."""
        out = Families()
        for stats in self:
            stats.read()
            core = {"layer": contract.LAYER, "cache": stats.name}
            out.add(contract.CACHE_LOOKUPS, {**core, "result": "hit"}, stats.hits)
            out.add(contract.CACHE_LOOKUPS, {**core, "result": "miss"}, stats.misses)
            out.add(contract.CACHE_EVICTIONS, core, stats.evictions)
            if (size := stats.size()) is not None:
                out.add(contract.CACHE_ENTRIES, core, size)
            one = {"cache": stats.name}
            out.add(contract.APP_CACHE_LOADS, {**one, "result": "success"}, stats.load_success)
            out.add(contract.APP_CACHE_LOADS, {**one, "result": "failure"}, stats.load_failure)
            out.add(contract.APP_CACHE_LOAD_SECONDS, one, stats.load_ns / 1e9)
            for entry in stats.payload().get("latency", []):
                out.add_histogram(contract.CACHE_LATENCY, {**core, "op": entry["op"]},
                                  list(entry["buckets"].items()), entry["sum"])
        yield from out

    def register(self, registry: Any = None) -> Caches:
        """Expose in a prometheus_client registry (the global one by default)."""
        if registry is None:
            from prometheus_client import REGISTRY as registry
        registry.register(self)
        return self

    # --- push to an exporter -----------------------------------------------------------------
    def payload(self, instance: str, started_at: float) -> dict[str, Any]:
        return {"instance": instance, "started_at": started_at,
                "caches": [stats.payload() for stats in self]}

    def push_to(self, url: str, *, instance: str | None = None, interval: float = 15.0,
                token: str | None = None, timeout: float = 2.0) -> Pusher:
        """Start pushing to ``url`` (the exporter) every ``interval`` seconds."""
        pusher = Pusher(self, url, instance or default_instance(), interval, token, timeout)
        pusher.start()
        return pusher


def default_instance() -> str:
    """``host:pid``: unique per process, stable while it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Pusher:
    """Pushes snapshots from a daemon thread; an absent exporter costs a log line, no more."""

    def __init__(self, caches: Caches, url: str, instance: str, interval: float,
                 token: str | None, timeout: float) -> None:
        self._caches = caches
        self._endpoint = url.rstrip("/") + "/api/v1/caches"
        self.instance = instance
        self._interval = interval
        self._token = token
        self._timeout = timeout
        self._started_at = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cachewatch-push", daemon=True)
        self.pushed = self.failed = 0
        self._was_failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self, flush: bool = True) -> None:
        """Stop the thread; by default push once more so the last counts are not lost."""
        self._stop.set()
        self._thread.join(timeout=self._timeout + 1)
        if flush:
            self.push_now()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.push_now()

    def push_now(self) -> bool:
        """One push, now; ``False`` (and a log line when it starts failing) if it did not land.

        Never raises: whatever the exporter (or whatever answers at its address) does, the
        app's thread and this one carry on.
        """
        try:
            body = json.dumps(self._caches.payload(self.instance, self._started_at)).encode()
            request = urllib.request.Request(self._endpoint, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            if self._token:
                request.add_header("Authorization", f"Bearer {self._token}")
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                response.read()
        except Exception as exc:
            self.failed += 1
            if not self._was_failing:
                log.warning("cachewatch push failed; will keep trying",
                            extra={"endpoint": self._endpoint, "error": str(exc)})
            self._was_failing = True
            return False
        self.pushed += 1
        self._was_failing = False
        return True


caches = Caches()
"""The default set that :func:`cached` and the ``instrument_*`` helpers add to."""


def instrument_lru(func: F, name: str | None = None, *, parent: str | None = None,
                   into: Caches | None = None) -> F:
    """Count an existing ``functools.lru_cache`` function; returns it unchanged."""
    if not hasattr(func, "cache_info"):
        raise TypeError(f"{func!r} is not an lru_cache function (no cache_info())")
    (into or caches).add(_LruStats(func, name or func.__qualname__, parent=parent))
    return func


def cached(name: str | None = None, *, maxsize: int | None = 128, typed: bool = False,
           parent: str | None = None, into: Caches | None = None) -> Callable[[F], F]:
    """``functools.lru_cache`` that reports as cache ``name`` (default: the function's name)."""

    def decorate(func: F) -> F:
        wrapped = functools.lru_cache(maxsize=maxsize, typed=typed)(func)
        return instrument_lru(wrapped, name or func.__qualname__, parent=parent, into=into)

    return decorate


def instrument_cachetools(cache: Any, name: str, *, parent: str | None = None,
                          into: Caches | None = None) -> CacheStats:
    """Count hits, misses and evictions of a cachetools cache, in place; returns its stats."""
    stats = (into or caches).add(CacheStats(name, parent=parent, size=lambda: len(cache)))
    base = type(cache)

    class Instrumented(base):  # type: ignore[misc, valid-type]
        def __getitem__(self, key: Any) -> Any:
            try:
                value = base.__getitem__(self, key)
            except KeyError:
                stats.misses += 1
                raise
            stats.hits += 1
            return value

        def get(self, key: Any, default: Any = None) -> Any:
            try:
                return self[key]
            except KeyError:
                return default

        def popitem(self) -> Any:
            item = base.popitem(self)
            stats.evictions += 1
            stats.eviction_weight += self.getsizeof(item[1])
            return item

    Instrumented.__name__ = Instrumented.__qualname__ = f"Instrumented{base.__name__}"
    cache.__class__ = Instrumented
    return stats
