"""Refused requests and connections: counted always, logged once per cause and interval.

A client that retries a wrong token, or a scanner that opens thousands of connections, would
otherwise write one log line per attempt: the log grows without bound and real events drown.
Each cause is logged the first time, then at most once per ``interval`` with how many were
refused since the last line; the counts are also exported (``cachewatch_http_refused_total``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ..metrics import contract
from ..metrics.cached import CachedFamilies
from ..metrics.contract import Families

log = logging.getLogger("cachewatch.refused")

# Causes refused at the HTTP layer; their counters exist at 0 from the start.
HTTP_CAUSES = ("unauthorized", "rate_limited", "auth_busy", "connection_cap", "header_timeout",
               "body_timeout", "header_too_large", "bad_request")


class RefusalLog:
    """Per-cause counts and a rate-limited warning; causes are fixed strings from the code."""

    def __init__(self, interval: float = 60.0, causes: tuple[str, ...] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(causes, 0)
        self.version = 0  # raised after every count (``metrics.cached``)
        # cause -> (when last logged, refusals since then that were not logged)
        self._last: dict[str, tuple[float, int]] = {}

    def refused(self, cause: str, message: str, **fields: object) -> None:
        """Count one refusal; log it if ``cause`` was not logged within the interval."""
        now = self._clock()
        with self._lock:
            self._counts[cause] = self._counts.get(cause, 0) + 1
            self.version += 1
            last = self._last.get(cause)
            if last is not None and now - last[0] < self.interval:
                self._last[cause] = (last[0], last[1] + 1)
                return
            self._last[cause] = (now, 0)
        log.warning(message, extra={"cause": cause, **fields,
                                    "suppressed": last[1] if last else 0,
                                    "log_interval_s": self.interval})

    def counts(self) -> dict[str, int]:
        """Refusals so far, by cause."""
        with self._lock:
            return dict(self._counts)


class RefusalCollector(Collector):
    """``cachewatch_http_refused_total{reason}`` from a ``RefusalLog``, made again only after
    a refusal (``metrics.cached``)."""

    def __init__(self, refusals: RefusalLog) -> None:
        self.refusals = refusals
        self._cached = CachedFamilies()

    def collect(self) -> Iterator[Metric]:
        return iter(self._cached.get(self.refusals.version, self._families))

    def _families(self) -> Families:
        out = Families()
        for cause, count in sorted(self.refusals.counts().items()):
            out.add(contract.HTTP_REFUSED, {"reason": cause}, count)
        return out
