"""How many request-body bytes every receiver together may hold at once, and giving them back.

Each receiver bounds its own body (``<section>.max_body_bytes``), but eight senders at the limit
at once would hold eight times that, and parsing multiplies it again: a flood could take
gigabytes and starve ``/metrics`` of the event loop. ``BodyBudget`` holds the bytes of every
body being read or handled (``web.max_inflight_body_bytes``): a body whose declared length does
not fit is refused before a byte is read, a chunked one as soon as it outgrows what is left. A
request holds its share until its answer is sent (the ``Guard`` gives it back), so a body being
parsed still counts. Refusals are counted as ``body_budget`` in ``cachewatch_http_refused_total``.

Freed memory goes back to the system: glibc keeps freed heap pages, and after a burst of large
bodies a process would stay at its peak; large buffers are taken from ``mmap`` (freed at once),
and the heap is trimmed after a request that held more than ``TRIM_OVER`` bytes. Both speak to
glibc through ``ctypes``, loaded with the first body over ``MMAP_THRESHOLD`` (its length is
known before it is read, or as a chunked one grows): a process that never receives one never
loads ``ctypes`` (0.3-0.4 MB), and every large body still comes from ``mmap``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import MutableMapping
from typing import Any

from .refusals import RefusalLog

SCOPE_KEY = "cachewatch.body_budget"  # the budget, in every request's ASGI scope
HELD_KEY = "cachewatch.body_held"  # bytes that request holds
TRIM_OVER = 1 << 20
MIN_TRIM_INTERVAL = 1.0  # seconds between two heap trims at most: a trim walks the heap
M_MMAP_THRESHOLD = -3
# Just over a socket read's buffer (asyncio reads up to 256 KiB into a new bytes object, then
# shrinks it): at 256 KiB exactly every read took an mmap, an mremap and a munmap.
MMAP_THRESHOLD = 264 * 1024


class BodyBudget:
    """Bytes of request bodies held across all connections, at most ``limit``."""

    def __init__(self, limit: int, refusals: RefusalLog | None = None) -> None:
        self.limit = limit
        # a chunked body grows its share by this much at least (not a take per read)
        self.step = min(64 * 1024, limit)
        self.refusals = refusals or RefusalLog()
        self._held = 0
        self._lock = threading.Lock()
        self._trimmed_at = 0.0

    @property
    def held(self) -> int:
        """Bytes held now."""
        return self._held

    def take(self, scope: MutableMapping[str, Any], size: int) -> bool:
        """Hold ``size`` more bytes for the request of ``scope``; ``False`` (counted, logged
        once a minute) when they do not fit."""
        with self._lock:
            if self._held + size > self.limit:
                fits = False
            else:
                self._held += size
                fits = True
        if not fits:
            self.refusals.refused("body_budget", "request body refused: receivers hold "
                                  "web.max_inflight_body_bytes already", limit=self.limit)
            return False
        held = scope[HELD_KEY] = scope.get(HELD_KEY, 0) + size
        if held > MMAP_THRESHOLD:  # before the buffer that holds the whole body is made
            prefer_mmap()
        return True

    def give_back(self, scope: MutableMapping[str, Any]) -> None:
        """Release what the request of ``scope`` holds (its answer is sent)."""
        held = scope.pop(HELD_KEY, 0)
        if not held:
            return
        with self._lock:
            self._held -= held
            trim = held > TRIM_OVER and time.monotonic() - self._trimmed_at > MIN_TRIM_INTERVAL
            if trim:
                self._trimmed_at = time.monotonic()
        if trim:
            trim_heap()


def budget_of(scope: MutableMapping[str, Any]) -> BodyBudget | None:
    """The budget the ``Guard`` put in ``scope`` (none for an application used bare)."""
    return scope.get(SCOPE_KEY)


@functools.cache
def _libc() -> Any:
    """glibc through ``ctypes``, loaded on first need; ``None`` on another C library."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


@functools.cache
def prefer_mmap() -> None:
    """Take buffers over ``MMAP_THRESHOLD`` from ``mmap``: glibc would otherwise raise that
    threshold to 32 MiB after the first large free, and every later body would stay on the heap
    once freed. Once per process, before the first body over the threshold is read. Nothing on
    a C library other than glibc."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def trim_heap() -> None:
    """Give the heap's free pages back to the system (glibc ``malloc_trim``)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
