"""Redis collector: ``INFO`` and ``INFO latencystats`` of each target, as contract families.

One pipelined round trip per target per scrape. ``INFO`` does not touch the keyspace, so
reading it never moves the hit/miss counters it reports.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.metrics_core import Metric

from .. import contract
from ..config import RedisSettings, RedisTarget, Settings, TargetAddressError
from ..contract import Families, Layer
from ..health import Health
from ..redis_targets import (
    REASONS,
    ClientCache,
    UnknownTarget,
    classify,
    load_secrets,
    resolve_probe_target,
    with_secrets,
)
from . import register
from .base import ProbeTargetError, TargetCollector
from .redis_probe import LatencyProbe

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
        health: Health,
        *,
        settings: RedisSettings | None = None,
        secrets: dict[str, dict[str, str]] | None = None,
        probe: LatencyProbe | None = None,
        clients: ClientCache | None = None,
        remember: bool = True,
    ) -> None:
        super().__init__(health, timeout, remember=remember)
        self._targets = {t.name or "": t for t in targets}
        self._settings = settings
        self._secrets = secrets or {}
        self._probe = probe
        # A /probe collector borrows the main collector's clients and probe; only the main one
        # (the one built with settings) owns and closes them.
        self._owner = clients is None
        self._clients = clients or ClientCache(timeout, size=len(self._targets) + 1)
        self._probe_clients: ClientCache | None = None
        self._warned_no_latencystats: set[str] = set()
        if remember:
            health.expect(self.name, self._targets, self.reasons)

    def targets(self) -> Sequence[str]:
        return list(self._targets)

    def classify(self, exc: BaseException) -> tuple[str, str]:
        return classify(exc)

    def read(self, target: str) -> Families:
        client = self._clients.get(self._targets[target])
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("INFO", "default")
        pipe.execute_command("INFO", "latencystats")
        pipe.execute_command("INFO", "commandstats")
        info, latencystats, commandstats = pipe.execute()
        return self._families(target, info, latencystats, commandstats)

    def _families(self, cache: str, info: dict[str, Any], latencystats: dict[str, Any],
                  commandstats: dict[str, Any]) -> Families:
        out = Families()
        core = {"layer": Layer.REDIS.value, "cache": cache}
        out.add(contract.CACHE_LOOKUPS, {**core, "result": "hit"}, info["keyspace_hits"])
        out.add(contract.CACHE_LOOKUPS, {**core, "result": "miss"}, info["keyspace_misses"])
        out.add(contract.CACHE_EVICTIONS, core, info["evicted_keys"])
        out.add(contract.CACHE_BYTES, core, info["used_memory"])
        one = {"cache": cache}
        total_keys = 0
        for key, value in info.items():
            match = _DB.match(key)
            if match and isinstance(value, dict):
                db = {"cache": cache, "db": match.group(1)}
                total_keys += int(value.get("keys", 0))
                out.add(contract.REDIS_DB_KEYS, db, value.get("keys", 0))
                out.add(contract.REDIS_DB_KEYS_EXPIRING, db, value.get("expires", 0))
        out.add(contract.CACHE_ENTRIES, core, total_keys)
        out.add(contract.REDIS_EXPIRED_KEYS, one, info["expired_keys"])
        out.add(contract.REDIS_MAXMEMORY, one, info.get("maxmemory", 0))
        out.add(contract.REDIS_CONNECTED_CLIENTS, one, info["connected_clients"])
        out.add(contract.REDIS_COMMANDS_PROCESSED, one, info["total_commands_processed"])
        out.add(contract.REDIS_INFO, {
            "cache": cache,
            "version": str(info.get("redis_version", "")),
            "role": str(info.get("role", "")),
            "mode": str(info.get("redis_mode", "")),
        }, 1)
        self._server_latency(cache, latencystats, commandstats, out)
        return out

    def _server_latency(self, cache: str, latencystats: dict[str, Any],
                        commandstats: dict[str, Any], out: Families) -> None:
        found = False
        for key, value in latencystats.items():
            match = _LATENCY.match(key)
            if not match or not isinstance(value, dict):
                continue
            found = True
            command = match.group(1)
            calls = commandstats.get(f"cmdstat_{command}", {})
            out.add_summary(
                contract.REDIS_SERVER_LATENCY, {"cache": cache, "command": command},
                count=float(calls.get("calls", 0)),
                sum_value=float(calls.get("usec", 0)) / 1e6,
                quantiles={q: float(value[p]) / 1e6 for p, q in _QUANTILES.items() if p in value},
            )
        if not found and cache not in self._warned_no_latencystats:
            self._warned_no_latencystats.add(cache)
            log.info(
                "INFO latencystats is empty: Redis older than 7.0 or latency-tracking is off;"
                " server-side percentiles are not exported for this target",
                extra={"target": cache},
            )

    def standing(self) -> Iterable[Metric]:
        if self._probe is None:
            return ()
        return self._probe.families(self._targets)

    def start(self) -> None:
        if self._probe is not None and self._owner:
            self._probe.start()

    def close(self) -> None:
        if not self._owner:
            return
        if self._probe is not None:
            self._probe.stop()
        self._clients.close()
        if self._probe_clients is not None:
            self._probe_clients.close()

    def for_probe(self, query: str) -> RedisCollector:
        """A one-target collector for ``/probe?target=query``; unknown targets are not kept."""
        if self._settings is None:
            raise ProbeTargetError("this collector was not built from settings")
        try:
            target, configured = resolve_probe_target(query, self._settings, self._secrets)
        except (TargetAddressError, UnknownTarget) as exc:
            raise ProbeTargetError(str(exc)) from None
        if configured:
            clients = self._clients
        else:
            if self._probe_clients is None:
                self._probe_clients = ClientCache(self.timeout)
            clients = self._probe_clients
        return RedisCollector(
            [target], self.timeout, self.health, clients=clients, remember=configured,
            probe=self._probe if configured else None,
        )


@register("redis")
def build(settings: Settings, health: Health) -> RedisCollector:
    """The configured targets, with secrets applied and a latency probe if one is wanted."""
    section = settings.redis
    secrets = load_secrets(section.secrets_file)
    targets = [with_secrets(t, secrets) for t in section.targets]
    probe = None
    if section.probe_interval > 0 and targets:
        probe = LatencyProbe(targets, section.probe_interval, section.timeout, health)
    return RedisCollector(targets, section.timeout, health, settings=section, secrets=secrets,
                          probe=probe)
