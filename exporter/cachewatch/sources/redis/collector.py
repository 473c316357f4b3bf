"""Redis collector: ``INFO``, ``INFO latencystats`` and ``LATENCY HISTOGRAM`` of each target,
as contract families; a target that is a Redis Cluster is read node by node (``cluster``).

One pipelined round trip per server per scrape, on the event loop (``node``). ``INFO`` does not
touch the keyspace, so reading it never moves the hit/miss counters it reports.
``LATENCY HISTOGRAM`` is sent only to Redis 7.0+ (decided once per connection); where the server
refuses it (no permission), that family is left out for the target and the rest of the read
stands.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from ...collectors.latency_probe import ProbedCollector
from ...http.allowlist import AllowList
from ...metrics.cardinality import LabelCap
from ...metrics.contract import Families
from ...runtime import Runtime
from ...source import ProbeTargetError
from . import contract
from .client import REASONS, ClientCache, classify
from .cluster import Cluster, ClusterError, Outcome, is_cluster
from .families import NodeSink, Sink, add_histograms, add_info
from .node import NodeRead, read_node
from .probe import RedisProbe
from .settings import DEFAULT_MAX_REPLY_BYTES, RedisSettings, RedisTarget, TargetAddressError
from .targets import UnknownTarget, load_secrets, resolve_probe_target, with_secrets
from .topology import Node

log = logging.getLogger("cachewatch.redis")



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
        # Targets found to be a Redis Cluster, with their nodes: shared with /probe of
        # configured targets, so a probe does not ask for a layout the scrapes know.
        self._clusters: dict[str, Cluster] = (
            probe_of._clusters if probe_of is not None and remember else {})
        if remember:
            self.health.expect(self.name, self._targets, self.reasons)

    def targets(self) -> Sequence[str]:
        return list(self._targets)

    def classify(self, exc: BaseException) -> tuple[str, str]:
        return classify(exc)

    async def read_async(self, target: str) -> Families:
        started = time.perf_counter()
        histogram = bool(self._histogram_commands)
        cluster = self._clusters.get(target)
        if cluster is None:
            read = await read_node(self._clients, self._targets[target], histogram)
            if not is_cluster(read.info):
                out = Families()
                self._node_families(target, read, out)
                return out
            cluster = self._clusters[target] = Cluster(self._targets[target], self._clients,
                                                       histogram)
        outcomes = await cluster.read(self.timeout - (time.perf_counter() - started))
        self._clients.grow(len(self._targets) + 1 + sum(
            len(c.nodes) for c in self._clusters.values()))
        return self._cluster_families(target, outcomes)

    def _node_families(self, cache: str, read: NodeRead, out: Sink) -> None:
        """One server's families under the ``cache`` label, into ``out``."""
        if not add_info(out, cache, read.info, read.commands) and self._first_warning(cache):
            log.info("INFO latencystats is empty: Redis older than 7.0 or latency-tracking is"
                     " off; server-side percentiles are not exported for this target",
                     extra={"target": cache})
        if read.histogram is not None:
            self._add_histograms(out, cache, read.histogram, read.commands)

    def _cluster_families(self, cache: str, outcomes: dict[Node, Outcome]) -> Families:
        """Every node's families with its ``node`` and ``role``, whether it answered, and
        whether the cluster is ``partial``; a failure only when no node answered."""
        out = Families()
        failed: list[BaseException] = []
        for node, outcome in outcomes.items():
            labels = {"cache": cache, "node": node.address, "role": node.role}
            out.add(contract.REDIS_CLUSTER_NODE_UP, labels, float(isinstance(outcome, NodeRead)))
            if isinstance(outcome, NodeRead):
                self._node_families(cache, outcome, NodeSink(out, node))
                continue
            failed.append(outcome)
            reason, message = classify(outcome)
            log.debug("cluster node not read", extra={"target": cache, "node": node.address,
                                                      "reason": reason, "error": message})
        if len(failed) == len(outcomes):
            raise failed[0] if failed else ClusterError(f"{cache} lists no nodes")
        out.add(contract.REDIS_CLUSTER_PARTIAL, {"cache": cache}, float(bool(failed)))
        return out

    def _add_histograms(self, out: Sink, cache: str, reply: object,
                        commands: dict[str, tuple[float, float]]) -> None:
        """The per-command histogram; nothing for a server that refused the command (no
        permission), said once."""
        if not isinstance(reply, list | dict):  # an error reply, returned as a value
            if self._first_warning(f"histogram:{cache}"):
                log.info("LATENCY HISTOGRAM refused (no permission?): the command latency"
                         " histogram is not exported for this target",
                         extra={"target": cache, "error": str(reply)})
            return
        cap = self._command_caps.get(cache)
        if cap is None:  # made once per target, not on every scrape
            cap = self._command_caps.setdefault(cache, LabelCap(self._histogram_commands))
        add_histograms(out, cache, reply, commands, cap)

    def close_loop(self) -> None:
        self._clients.close_loop()
        if self._probe_clients is not None:
            self._probe_clients.close_loop()

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
