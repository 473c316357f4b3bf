"""Memcached collector: ``stats`` of each target, as contract families, read at scrape time.

One round trip per target per scrape, on the event loop. ``stats`` reads no key, so reading it
never moves the hit and miss counters it reports.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

from ...collectors.latency_probe import ProbedCollector
from ...http.allowlist import AllowList
from ...metrics.contract import Families
from ...runtime import Runtime
from ...source import ProbeTargetError
from . import contract
from .client import REASONS, Connections, classify
from .probe import MemcachedProbe
from .settings import (
    DEFAULT_MAX_REPLY_BYTES,
    MemcachedSettings,
    MemcachedTarget,
    TargetAddressError,
    normalise_address,
)

log = logging.getLogger("cachewatch.memcached")


def families(cache: str, stats: dict[str, str]) -> Families:
    """The contract families of one target's ``stats``."""
    if "get_hits" not in stats:
        raise ValueError("stats has no get_hits: not a memcached server")
    out = Families()
    core = {"layer": contract.LAYER, "cache": cache}
    one = {"cache": cache}
    out.add(contract.CACHE_LOOKUPS, {**core, "result": "hit"}, float(stats["get_hits"]))
    out.add(contract.CACHE_LOOKUPS, {**core, "result": "miss"}, float(stats["get_misses"]))
    out.add(contract.CACHE_EVICTIONS, core, float(stats["evictions"]))
    out.add(contract.CACHE_ENTRIES, core, float(stats["curr_items"]))
    out.add(contract.CACHE_BYTES, core, float(stats["bytes"]))
    out.add(contract.MEMCACHED_LIMIT_BYTES, one, float(stats["limit_maxbytes"]))
    out.add(contract.MEMCACHED_ITEMS_STORED, one, float(stats["total_items"]))
    out.add(contract.MEMCACHED_EVICTED_UNFETCHED, one, float(stats["evicted_unfetched"]))
    out.add(contract.MEMCACHED_EXPIRED_UNFETCHED, one, float(stats["expired_unfetched"]))
    out.add(contract.MEMCACHED_CONNECTIONS, one, float(stats["curr_connections"]))
    out.add(contract.MEMCACHED_INFO, {"cache": cache, "version": stats.get("version", "")}, 1)
    return out


class MemcachedCollector(ProbedCollector):
    """Reads a fixed list of memcached targets on every scrape."""

    name = "memcached"
    reasons = REASONS

    def __init__(
        self,
        targets: Sequence[MemcachedTarget],
        timeout: float,
        runtime: Runtime,
        *,
        settings: MemcachedSettings | None = None,
        probe: MemcachedProbe | None = None,
        connections: Connections | None = None,
        remember: bool = True,
        probe_of: MemcachedCollector | None = None,
    ) -> None:
        # A /probe collector borrows the main collector's connections and probe; only the main
        # one (the one built without connections) owns and closes them.
        super().__init__(runtime, timeout, probe=probe, owner=connections is None,
                         remember=remember, probe_of=probe_of)
        self._targets = {t.label: t for t in targets}
        self._settings = settings
        self._connections = connections or Connections(
            settings.max_reply_bytes if settings else DEFAULT_MAX_REPLY_BYTES,
            size=len(self._targets) + 1)
        self._probe_connections: Connections | None = None
        if remember:
            self.health.expect(self.name, self._targets, self.reasons)

    def targets(self) -> Sequence[str]:
        return list(self._targets)

    def classify(self, exc: BaseException) -> tuple[str, str]:
        return classify(exc)

    async def read_async(self, target: str) -> Families:
        return families(target, await self._connections.stats(self._targets[target]))

    def close_loop(self) -> None:
        self.release()

    def described(self) -> str:
        return ",".join(f"{name}={t.address}" for name, t in self._targets.items())

    def release(self) -> None:
        self._connections.close()
        if self._probe_connections is not None:
            self._probe_connections.close()

    def for_probe(self, query: str, allow: AllowList) -> MemcachedCollector:
        """A one-target collector for ``/probe?target=query``: a configured target (by name or
        address), or an address whose host ``allow`` (``probe.allow``) lists."""
        if self._settings is None:
            raise ProbeTargetError("this collector was not built from settings")
        target = self._configured(query)
        if target is not None:
            return MemcachedCollector([target], self.timeout, self.runtime,
                                      connections=self._connections, probe=self._probe,
                                      probe_of=self)
        target = self._allowed(query, allow)
        if self._probe_connections is None:
            self._probe_connections = Connections(self._settings.max_reply_bytes)
        return MemcachedCollector([target], self.timeout, self.runtime,
                                  connections=self._probe_connections, remember=False)

    def _configured(self, query: str) -> MemcachedTarget | None:
        """The configured target named ``query`` or at its address, if any."""
        if query in self._targets:
            return self._targets[query]
        try:
            address = normalise_address(query)
        except TargetAddressError:
            return None
        return next((t for t in self._targets.values() if t.address == address), None)

    def _allowed(self, query: str, allow: AllowList) -> MemcachedTarget:
        """An unlisted address ``allow`` permits; ``ProbeTargetError`` saying why if not."""
        if ":" not in query and "/" not in query:
            known = ", ".join(sorted(self._targets)) or "none"
            raise ProbeTargetError(
                f"unknown target {query!r}: not a configured target name (configured: {known});"
                " pass a configured name or an address like host:11211")
        try:
            address = normalise_address(query)
        except TargetAddressError as exc:
            raise ProbeTargetError(str(exc)) from None
        if address.startswith("unix://"):
            raise ProbeTargetError("unix:// sockets can be probed only as configured targets")
        if not allow.permits(urlsplit("//" + address).hostname or ""):
            raise ProbeTargetError(
                f"{address!r} is not a configured target and probe.allow does not list its "
                f"host (probe.allow: {allow.describe()}); configure it as a target, or add the "
                "host or its network to probe.allow")
        return MemcachedTarget(address=address)


def build(section: MemcachedSettings, runtime: Runtime) -> MemcachedCollector:
    """The configured targets, with a latency probe if one is wanted."""
    probe = None
    if section.probe_interval > 0 and section.targets:
        probe = MemcachedProbe(section.targets, section.probe_interval, section.timeout,
                             runtime.health, section.max_reply_bytes)
    return MemcachedCollector(section.targets, section.timeout, runtime, settings=section,
                              probe=probe)
