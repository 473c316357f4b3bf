"""Redis collector: ``INFO`` and ``INFO latencystats`` of each target, as contract families.

One pipelined round trip per target per scrape. ``INFO`` does not touch the keyspace, so
reading it never moves the hit/miss counters it reports.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Sequence

from prometheus_client.metrics_core import Metric

from ... import contract
from ...allowlist import AllowList
from ...contract import Families, Layer
from ...runtime import Runtime
from ...source import ProbeTargetError
from ...target_collector import TargetCollector
from .info import parse_info, parse_nested
from .probe import LatencyProbe
from .settings import RedisSettings, RedisTarget, TargetAddressError
from .targets import (
    DEFAULT_MAX_REPLY_BYTES,
    REASONS,
    ClientCache,
    UnknownTarget,
    classify,
    load_secrets,
    resolve_probe_target,
    with_secrets,
)

log = logging.getLogger("cachewatch.redis")

_DB = re.compile(r"^db(\d+)$")
_LATENCY = re.compile(r"^latency_percentiles_usec_(.+)$")
# INFO latencystats keys -> the quantile label Prometheus users expect.
_QUANTILES = {"p50": "0.5", "p99": "0.99", "p99.9": "0.999"}


class RedisCollector(TargetCollector):
    """Reads a fixed list of Redis targets on every scrape."""

    name = "redis"
    reasons = REASONS

    def __init__(
        self,
        targets: Sequence[RedisTarget],
        timeout: float,
        runtime: Runtime,
        *,
        settings: RedisSettings | None = None,
        secrets: dict[str, dict[str, str]] | None = None,
        probe: LatencyProbe | None = None,
        clients: ClientCache | None = None,
        remember: bool = True,
        probe_of: RedisCollector | None = None,
    ) -> None:
        super().__init__(runtime, timeout, remember=remember, probe_of=probe_of)
        self._targets = {t.name or "": t for t in targets}
        self._settings = settings
        self._secrets = secrets or {}
        self._probe = probe
        # A /probe collector borrows the main collector's clients and probe; only the main one
        # (the one built with settings) owns and closes them.
        self._owner = clients is None
        self._clients = clients or ClientCache(
            timeout, settings.max_reply_bytes if settings else DEFAULT_MAX_REPLY_BYTES,
            size=len(self._targets) + 1)
        self._probe_clients: ClientCache | None = None
        # One "logged once" memory for the main collector and every /probe collector it makes.
        self._warned: tuple[set[str], threading.Lock] = (
            probe_of._warned if probe_of is not None else (set(), threading.Lock()))
        if remember:
            self.health.expect(self.name, self._targets, self.reasons)

    def targets(self) -> Sequence[str]:
        return list(self._targets)

    def classify(self, exc: BaseException) -> tuple[str, str]:
        return classify(exc)

    def read(self, target: str) -> Families:
        client = self._clients.get(self._targets[target])
        pipe = client.pipeline(transaction=False)
        # Three INFO calls, not one with three sections: Redis < 7 takes one section per call.
        for section in ("default", "latencystats", "commandstats"):
            pipe.execute_command("INFO", section)
        info: dict[str, str] = {}
        for reply in pipe.execute():
            info.update(parse_info(reply))
        return self._families(target, info)

    def _families(self, cache: str, info: dict[str, str]) -> Families:
        out = Families()
        core = {"layer": Layer.REDIS.value, "cache": cache}
        one = {"cache": cache}
        if "keyspace_hits" not in info:
            raise ValueError("INFO has no keyspace_hits: not a Redis data server (a Sentinel?)")
        out.add(contract.CACHE_LOOKUPS, {**core, "result": "hit"}, float(info["keyspace_hits"]))
        out.add(contract.CACHE_LOOKUPS, {**core, "result": "miss"},
                float(info["keyspace_misses"]))
        out.add(contract.CACHE_EVICTIONS, core, float(info["evicted_keys"]))
        out.add(contract.CACHE_BYTES, core, float(info["used_memory"]))
        total_keys = 0.0
        latency_found = False
        for key, value in info.items():
            if (db := _DB.match(key)) is not None:
                counts = parse_nested(value)
                labels = {"cache": cache, "db": db.group(1)}
                total_keys += float(counts.get("keys", 0))
                out.add(contract.REDIS_DB_KEYS, labels, float(counts.get("keys", 0)))
                out.add(contract.REDIS_DB_KEYS_EXPIRING, labels, float(counts.get("expires", 0)))
            elif (latency := _LATENCY.match(key)) is not None:
                latency_found = True
                command = latency.group(1)
                percentiles = parse_nested(value)
                calls = parse_nested(info.get(f"cmdstat_{command}", ""))
                out.add_summary(
                    contract.REDIS_SERVER_LATENCY, {"cache": cache, "command": command},
                    count=float(calls.get("calls", 0)),
                    sum_value=float(calls.get("usec", 0)) / 1e6,
                    quantiles={q: float(percentiles[p]) / 1e6
                               for p, q in _QUANTILES.items() if p in percentiles},
                )
        out.add(contract.CACHE_ENTRIES, core, total_keys)
        out.add(contract.REDIS_EXPIRED_KEYS, one, float(info["expired_keys"]))
        out.add(contract.REDIS_MAXMEMORY, one, float(info.get("maxmemory", 0)))
        out.add(contract.REDIS_CONNECTED_CLIENTS, one, float(info["connected_clients"]))
        out.add(contract.REDIS_COMMANDS_PROCESSED, one, float(info["total_commands_processed"]))
        out.add(contract.REDIS_INFO, {
            "cache": cache,
            "version": info.get("redis_version", ""),
            "role": info.get("role", ""),
            "mode": info.get("redis_mode", ""),
        }, 1)
        if not latency_found and self._first_warning(cache):
            log.info(
                "INFO latencystats is empty: Redis older than 7.0 or latency-tracking is off;"
                " server-side percentiles are not exported for this target",
                extra={"target": cache},
            )
        return out

    def _first_warning(self, cache: str) -> bool:
        warned, lock = self._warned
        with lock:
            if cache in warned:
                return False
            warned.add(cache)
            return True

    def standing(self) -> Iterable[Metric]:
        if self._probe is None:
            return ()
        return self._probe.families(self._targets)

    def start(self) -> None:
        if not self._owner:
            return
        log.info("reading redis targets", extra={
            "targets": ",".join(f"{name}={target.url}" for name, target in self._targets.items()),
            "latency_probe": self._probe is not None})
        if self._probe is not None:
            self._probe.start()

    def close(self) -> None:
        if not self._owner:
            return
        if self._probe is not None:
            self._probe.stop()
        self._clients.close()
        if self._probe_clients is not None:
            self._probe_clients.close()

    def for_probe(self, query: str, allow: AllowList) -> RedisCollector:
        """A one-target collector for ``/probe?target=query``: a configured target, or an
        address whose host ``allow`` (``probe.allow``) lists; unlisted ones are not kept."""
        if self._settings is None:
            raise ProbeTargetError("this collector was not built from settings")
        try:
            target, configured = resolve_probe_target(query, self._settings, self._secrets,
                                                      allow)
        except (TargetAddressError, UnknownTarget) as exc:
            raise ProbeTargetError(str(exc)) from None
        if configured:
            return RedisCollector([target], self.timeout, self.runtime, clients=self._clients,
                                  probe=self._probe, probe_of=self)
        if self._probe_clients is None:
            self._probe_clients = ClientCache(self.timeout, self._settings.max_reply_bytes)
        return RedisCollector([target], self.timeout, self.runtime, clients=self._probe_clients,
                              remember=False)


def build(section: RedisSettings, runtime: Runtime) -> RedisCollector:
    """The configured targets, with secrets applied and a latency probe if one is wanted."""
    secrets = load_secrets(section.secrets_file)
    targets = [with_secrets(t, secrets) for t in section.targets]
    probe = None
    if section.probe_interval > 0 and targets:
        probe = LatencyProbe(targets, section.probe_interval, section.timeout, runtime.health,
                             section.max_reply_bytes)
    return RedisCollector(targets, section.timeout, runtime, settings=section, secrets=secrets,
                          probe=probe)
