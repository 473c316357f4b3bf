"""One server's answers as contract families: ``INFO`` (keyspace, memory, clients, latencystats)
and the ``LATENCY HISTOGRAM``, for a server of its own or for a node of a cluster.

A node's series carry ``node`` (host:port) and ``role`` besides their own labels (``NodeSink``),
so series of different nodes never collide and ``sum by (cache)`` adds them up; a server of its
own gets no new label, and its exposition is what it always was.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache

from ...metrics.cardinality import OTHER, LabelCap
from ...metrics.contract import Families, MetricSpec
from . import contract
from .doctor.rules import from_info
from .histogram import EDGES_LE, CommandLatency, parse_latency_histogram
from .info import parse_nested
from .topology import MASTER, Node

_DB_OR_LATENCY = re.compile(r"db\d+$|latency_percentiles_usec_.")
# INFO latencystats keys -> the quantile label Prometheus users expect.
_QUANTILES = {"p50": "0.5", "p99": "0.99", "p99.9": "0.999"}
# The size of a cluster is its masters' data: a replica holds a copy, and counting it again
# would double the entries and bytes that `sum by (cache)` reports.
# A command commandstats does not list: no calls, no time.
_NO_CALLS = (0.0, 0.0)
_MASTERS_ONLY = frozenset({contract.CACHE_ENTRIES.name, contract.CACHE_BYTES.name})


class NodeSink:
    """``Families`` for one node of a cluster: each sample gets the node's ``node`` and
    ``role``, through twins of the contract's specs that take the two labels (not registered:
    the metric reference lists each family once, with the labels every target has).
    ``redis_info`` has a ``role`` of its own (the server's word, ``slave``) and gets ``node``
    only; a replica's entries and bytes are left out (``_MASTERS_ONLY``)."""

    def __init__(self, out: Families, node: Node) -> None:
        self._out = out
        self._node = node
        self._twins: dict[str, MetricSpec] = {}

    def _spec(self, spec: MetricSpec) -> MetricSpec:
        twin = self._twins.get(spec.name)
        if twin is None:
            extra = ("node",) if spec is contract.REDIS_INFO else ("node", "role")
            twin = self._twins[spec.name] = replace(spec, labels=spec.labels + extra)
        return twin

    def _labels(self, spec: MetricSpec, labels: Mapping[str, str]) -> dict[str, str]:
        if spec is contract.REDIS_INFO:
            return {**labels, "node": self._node.address}
        return {**labels, "node": self._node.address, "role": self._node.role}

    def add(self, spec: MetricSpec, labels: Mapping[str, str], value: float) -> None:
        if self._node.role == MASTER or spec.name not in _MASTERS_ONLY:
            self._out.add(self._spec(spec), self._labels(spec, labels), value)

    def add_cumulative(self, spec: MetricSpec, labels: Mapping[str, str],
                       edges: tuple[str, ...], counts: Sequence[float], sum_value: float) -> None:
        self._out.add_cumulative(self._spec(spec), self._labels(spec, labels), edges, counts,
                                 sum_value)

    def add_summary(self, spec: MetricSpec, labels: Mapping[str, str], count: float,
                    sum_value: float, quantiles: Mapping[str, float]) -> None:
        self._out.add_summary(self._spec(spec), self._labels(spec, labels), count, sum_value,
                              quantiles)


Sink = Families | NodeSink


class _Labels:
    """One target's label sets that do not change between scrapes, made once per ``cache``
    (every scrape built the same dicts again)."""

    __slots__ = ("core", "hit", "miss", "one")

    def __init__(self, cache: str) -> None:
        self.core = {"layer": contract.LAYER, "cache": cache}
        self.hit = {**self.core, "result": "hit"}
        self.miss = {**self.core, "result": "miss"}
        self.one = {"cache": cache}


@lru_cache(maxsize=256)
def _labels(cache: str) -> _Labels:
    return _Labels(cache)


@lru_cache(maxsize=1024)
def _keyspace(value: str) -> tuple[float, float]:
    """``keys=1,expires=0,avg_ttl=0`` -> (keys, expires): a pure function of the line, kept
    for the lines seen last (a database whose size did not move writes the same line)."""
    counts = parse_nested(value)
    return float(counts.get("keys", 0)), float(counts.get("expires", 0))


@lru_cache(maxsize=1024)
def _percentiles(value: str) -> dict[str, float]:
    """``p50=1.003,p99=2.007,p99.9=4.015`` (microseconds) -> ``{"0.5": seconds, ...}``, a pure
    function of the line, kept for the lines seen last. Read only, never changed."""
    percentiles = parse_nested(value)
    return {q: float(percentiles[p]) / 1e6 for p, q in _QUANTILES.items() if p in percentiles}


def add_info(out: Sink, cache: str, info: dict[str, str],
             commands: dict[str, tuple[float, float]]) -> bool:
    """The families ``INFO`` gives (calls and time per command from ``commands``, the parsed
    commandstats); whether it held server-side percentiles (latencystats)."""
    labels = _labels(cache)
    if "keyspace_hits" not in info:
        raise ValueError("INFO has no keyspace_hits: not a Redis data server (a Sentinel?)")
    add = out.add
    add(contract.CACHE_LOOKUPS, labels.hit, float(info["keyspace_hits"]))
    add(contract.CACHE_LOOKUPS, labels.miss, float(info["keyspace_misses"]))
    add(contract.CACHE_EVICTIONS, labels.core, float(info["evicted_keys"]))
    add(contract.CACHE_BYTES, labels.core, float(info["used_memory"]))
    total_keys = total_expiring = 0.0
    latency_found = False
    # Only db<N> and latency_percentiles_usec_<command> lines, picked out without a Python
    # step per INFO line (about 190 of them).
    for key in filter(_DB_OR_LATENCY.match, info):
        if key[0] == "d":
            keys, expiring = _keyspace(info[key])
            db = {"cache": cache, "db": key[2:]}
            total_keys += keys
            total_expiring += expiring
            add(contract.REDIS_DB_KEYS, db, keys)
            add(contract.REDIS_DB_KEYS_EXPIRING, db, expiring)
        else:
            latency_found = True
            command = key[25:]  # after "latency_percentiles_usec_"
            calls, usec = commands.get(command, _NO_CALLS)
            out.add_summary(contract.REDIS_SERVER_LATENCY, {"cache": cache, "command": command},
                            count=calls, sum_value=usec / 1e6,
                            quantiles=_percentiles(info[key]))
    add(contract.CACHE_ENTRIES, labels.core, total_keys)
    add(contract.REDIS_EXPIRED_KEYS, labels.one, float(info["expired_keys"]))
    add(contract.REDIS_MAXMEMORY, labels.one, float(info.get("maxmemory", 0)))
    add(contract.REDIS_CONNECTED_CLIENTS, labels.one, float(info["connected_clients"]))
    add(contract.REDIS_COMMANDS_PROCESSED, labels.one, float(info["total_commands_processed"]))
    add(contract.REDIS_INFO, {
        "cache": cache,
        "version": info.get("redis_version", ""),
        "role": info.get("role", ""),
        "mode": info.get("redis_mode", ""),
    }, 1)
    for rule, found in from_info(info, (total_keys, total_expiring)).items():
        add(contract.REDIS_FINDINGS, {"cache": cache, "rule": rule}, float(found))
    return latency_found


def add_histograms(out: Sink, cache: str, reply: list | dict,
                   stats: dict[str, tuple[float, float]], cap: LabelCap) -> None:
    """The per-command histogram: the busiest commands by name (``cap`` admits them) and the
    rest folded into ``other``; sums from ``stats`` (the parsed commandstats)."""
    kept: dict[str, tuple[CommandLatency, float]] = {}
    commands = parse_latency_histogram(reply)
    for command, latency in sorted(commands.items(), key=lambda c: -c[1].calls):
        usec = stats.get(command, _NO_CALLS)[1]
        label = cap(command)
        if label in kept:
            folded, total = kept[label]
            folded.add(latency)
            kept[label] = (folded, total + usec)
        else:
            kept[label] = (latency, usec)
    for command in sorted(kept, key=lambda c: (c == OTHER, c)):
        latency, usec = kept[command]
        out.add_cumulative(contract.REDIS_COMMAND_LATENCY,
                           {"cache": cache, "command": command}, EDGES_LE, latency.counts(),
                           usec / 1e6)
