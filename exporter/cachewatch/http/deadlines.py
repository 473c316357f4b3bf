"""Connection deadlines checked by one periodic sweep per server, not a timer per request.

Arming, re-arming and cancelling an event-loop timer for every phase of every request (the
head, the body, the keep-alive wait) cost a webhook sender three timer handles and as many
heap operations a request: more than the rest of the HTTP layer's own work. A connection
now only notes when its current phase must end (``deadline``, a float) and one timer per
server, running while any connection is open, closes the connections past theirs.

The price is granularity: a phase ends between its timeout and its timeout plus one sweep
interval (``every``: a second, or half the smallest timeout when that is shorter), as Go's
``http.Server`` deadlines are also only checked when the runtime polls.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Protocol

log = logging.getLogger("cachewatch.web")

NEVER = math.inf
MAX_INTERVAL = 1.0  # seconds between two sweeps at most


class Timed(Protocol):
    """A connection as the sweep sees it."""

    deadline: float

    def expire(self) -> None:
        """Its deadline has passed: close it (and count why)."""


def interval(*timeouts: float) -> float:
    """The sweep interval for these timeouts: a second, or half the shortest."""
    return min(MAX_INTERVAL, *(t / 2 for t in timeouts if t > 0))


class Sweep:
    """The timer of one server's connections: each has a ``deadline``; those past it expire."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.timed: set[Timed] = set()
        self._handle: asyncio.TimerHandle | None = None

    def watch(self, connection: Timed, loop: asyncio.AbstractEventLoop) -> None:
        """Check ``connection`` from now on; the sweep starts with the first one."""
        self.timed.add(connection)
        if self._handle is None:
            self._handle = loop.call_later(self.every, self._run, loop)

    def forget(self, connection: Timed) -> None:
        """``connection`` is gone."""
        self.timed.discard(connection)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        try:
            for connection in [c for c in self.timed if c.deadline <= now]:
                try:
                    connection.expire()
                except Exception:  # one connection's failure must not end every timeout
                    log.exception("closing a connection past its deadline failed")
                    self.timed.discard(connection)
        finally:
            # Stops when the last connection is gone: an idle server keeps no timer.
            self._handle = loop.call_later(self.every, self._run, loop) if self.timed else None
