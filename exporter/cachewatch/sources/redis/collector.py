"""Redis collector: ``INFO``, ``INFO latencystats`` and ``LATENCY HISTOGRAM`` of each target,
as contract families.

One pipelined round trip per target per scrape, on the event loop (``client``). ``INFO`` does not
touch the keyspace, so reading it never moves the hit/miss counters it reports.
``LATENCY HISTOGRAM`` needs Redis 7 (and the permission to run it): where the server refuses it,
that family is left out for the target and the rest of the read stands.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence

from ...collectors.latency_probe import ProbedCollector
from ...http.allowlist import AllowList
from ...metrics.cardinality import OTHER, LabelCap
from ...metrics.contract import Families
from ...runtime import Runtime
from ...source import ProbeTargetError
from . import contract
from .client import REASONS, ClientCache, ReplyError, classify
from .histogram import CommandLatency, parse_latency_histogram
from .info import parse_info, parse_nested
from .probe import RedisProbe
from .settings import DEFAULT_MAX_REPLY_BYTES, RedisSettings, RedisTarget, TargetAddressError
from .targets import UnknownTarget, load_secrets, resolve_probe_target, with_secrets

log = logging.getLogger("cachewatch.redis")

_DB = re.compile(r"^db(\d+)$")
_LATENCY = re.compile(r"^latency_percentiles_usec_(.+)$")
# INFO latencystats keys -> the quantile label Prometheus users expect.
_QUANTILES = {"p50": "0.5", "p99": "0.99", "p99.9": "0.999"}
# Three INFO calls, not one with three sections: Redis < 7 takes one section per call.
_INFO = (("INFO", "default"), ("INFO", "latencystats"), ("INFO", "commandstats"))


class RedisCollector(ProbedCollector):
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
        probe: RedisProbe | None = None,
        clients: ClientCache | None = None,
        remember: bool = True,
        probe_of: RedisCollector | None = None,
        histogram_commands: int = 10,
    ) -> None:
        # A /probe collector borrows the main collector's clients and probe; only the main one
        # (the one built with settings) owns and closes them.
        super().__init__(runtime, timeout, probe=probe, owner=clients is None, remember=remember,
                         probe_of=probe_of)
        self._targets = {t.name or "": t for t in targets}
        self._settings = settings
        self._secrets = secrets or {}
        self._clients = clients or ClientCache(
            settings.max_reply_bytes if settings else DEFAULT_MAX_REPLY_BYTES,
            size=len(self._targets) + 1)
        self._probe_clients: ClientCache | None = None
        # One "logged once" memory for the main collector and every /probe collector it makes.
        self._warned: tuple[set[str], threading.Lock] = (
            probe_of._warned if probe_of is not None else (set(), threading.Lock()))
        self._histogram_commands = histogram_commands
        # Commands admitted to the latency histogram, per target: shared with /probe of
        # configured targets, so a scrape through either keeps the same series.
        self._command_caps: dict[str, LabelCap] = (
            probe_of._command_caps if probe_of is not None and remember else {})
        if remember:
            self.health.expect(self.name, self._targets, self.reasons)

    def targets(self) -> Sequence[str]:
        return list(self._targets)

    def classify(self, exc: BaseException) -> tuple[str, str]:
        return classify(exc)

    async def read_async(self, target: str) -> Families:
        commands = (*_INFO, ("LATENCY", "HISTOGRAM")) if self._histogram_commands else _INFO
        # Errors come back as values: a refused LATENCY HISTOGRAM must not fail the read.
        replies = await self._clients.call(self._targets[target], *commands, raise_errors=False)
        info: dict[str, str] = {}
        for reply in replies[:3]:
            if isinstance(reply, ReplyError):
                raise reply
            if not isinstance(reply, bytes):
                raise ValueError(f"INFO answered {type(reply).__name__}, not text")
            info.update(parse_info(reply))
        out = self._families(target, info)
        if self._histogram_commands:
            self._add_histograms(out, target, replies[3], info)
        return out

    def _add_histograms(self, out: Families, cache: str, reply: object,
                        info: dict[str, str]) -> None:
        """The per-command histogram, the busiest commands by name and the rest as ``other``;
        nothing for a server that refused the command (older than 7.0, or no permission)."""
        if not isinstance(reply, list | dict):  # an error reply, returned as a value
            if self._first_warning(f"histogram:{cache}"):
                log.info("LATENCY HISTOGRAM refused (Redis older than 7.0 or no permission):"
                         " the command latency histogram is not exported for this target",
                         extra={"target": cache, "error": str(reply)})
            return
        cap = self._command_caps.setdefault(cache, LabelCap(self._histogram_commands))
        kept: dict[str, tuple[CommandLatency, float]] = {}
        commands = parse_latency_histogram(reply)
        for command, latency in sorted(commands.items(), key=lambda c: -c[1].calls):
            stats = parse_nested(info.get(f"cmdstat_{command}", ""))
            usec = float(stats.get("usec", 0))
            label = cap(command)
            if label in kept:
                folded, total = kept[label]
                folded.add(latency)
                kept[label] = (folded, total + usec)
            else:
                kept[label] = (latency, usec)
        for command in sorted(kept, key=lambda c: (c == OTHER, c)):
            latency, usec = kept[command]
            out.add_histogram(contract.REDIS_COMMAND_LATENCY, {"cache": cache, "command": command},
                              latency.buckets(), usec / 1e6)

    def close_loop(self) -> None:
        self._clients.close_loop()
        if self._probe_clients is not None:
            self._probe_clients.close_loop()

    def _families(self, cache: str, info: dict[str, str]) -> Families:
        out = Families()
        core = {"layer": contract.LAYER, "cache": cache}
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
            if key[:1] not in ("d", "l"):  # neither db<N> nor latency_percentiles_usec_<command>
                continue
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

    def described(self) -> str:
        return ",".join(f"{name}={target.url}" for name, target in self._targets.items())

    def release(self) -> None:
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
                                  probe=self._probe, probe_of=self,
                                  histogram_commands=self._histogram_commands)
        if self._probe_clients is None:
            self._probe_clients = ClientCache(self._settings.max_reply_bytes)
        return RedisCollector([target], self.timeout, self.runtime, clients=self._probe_clients,
                              remember=False, histogram_commands=self._histogram_commands)


def build(section: RedisSettings, runtime: Runtime) -> RedisCollector:
    """The configured targets, with secrets applied and a latency probe if one is wanted."""
    secrets = load_secrets(section.secrets_file)
    targets = [with_secrets(t, secrets) for t in section.targets]
    probe = None
    if section.probe_interval > 0 and targets:
        probe = RedisProbe(targets, section.probe_interval, section.timeout, runtime.health,
                             section.max_reply_bytes)
    return RedisCollector(targets, section.timeout, runtime, settings=section, secrets=secrets,
                          probe=probe, histogram_commands=section.latency_histogram_commands)
