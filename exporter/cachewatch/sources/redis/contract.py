"""The Redis source's part of the metric contract: its detail families, read from ``INFO``
and ``LATENCY HISTOGRAM``, and the ``layer`` it feeds the core families as.

The core families (``cachewatch.metrics.contract``) are re-exported here, so a module of this
source reads one contract: ``contract.CACHE_LOOKUPS`` and its own families alike.
"""

from __future__ import annotations

from ...metrics.contract import *  # noqa: F403 - the core families, read through this module
from ...metrics.contract import Kind, declare

# The ``layer`` label value this source's lookups and latency carry.
LAYER = "redis"

REDIS = "redis"
REDIS_EXPIRED_KEYS = declare(
    "redis_expired_keys_total", Kind.COUNTER,
    "Keys removed because their TTL ran out (INFO stats expired_keys).",
    ("cache",), REDIS)
REDIS_MAXMEMORY = declare(
    "redis_maxmemory_bytes", Kind.GAUGE,
    "The maxmemory limit; 0 means no limit (INFO memory maxmemory).",
    ("cache",), REDIS)
REDIS_CONNECTED_CLIENTS = declare(
    "redis_connected_clients", Kind.GAUGE,
    "Client connections open now, the exporter's own included (INFO clients).",
    ("cache",), REDIS)
REDIS_COMMANDS_PROCESSED = declare(
    "redis_commands_processed_total", Kind.COUNTER,
    "Commands the server has processed (INFO stats total_commands_processed).",
    ("cache",), REDIS)
REDIS_DB_KEYS = declare(
    "redis_db_keys", Kind.GAUGE,
    "Keys per logical database (INFO keyspace).",
    ("cache", "db"), REDIS)
REDIS_DB_KEYS_EXPIRING = declare(
    "redis_db_keys_expiring", Kind.GAUGE,
    "Keys with a TTL per logical database (INFO keyspace).",
    ("cache", "db"), REDIS)
REDIS_SERVER_LATENCY = declare(
    "redis_server_latency_seconds", Kind.SUMMARY,
    "Server-side command latency since the last stats reset: p50/p99/p99.9 from Redis 7"
    " INFO latencystats, count and sum from INFO commandstats; absent on older servers.",
    ("cache", "command"), REDIS)
REDIS_INFO = declare(
    "redis_info", Kind.INFO,
    "Redis server version, role and mode; always 1.",
    ("cache", "version", "role", "mode"), REDIS)
# Redis 7 keeps a latency histogram per command (hdr_histogram, iterated in powers of two from
# 1024 ns), so its buckets end at 2^k * 1.024 microseconds. The family exports that fixed ladder,
# up to the one covering Redis' 1 s ceiling, for every command: the same `le` set on every scrape,
# as rate() and histogram_quantile() need.
REDIS_COMMAND_LATENCY_BUCKETS: tuple[float, ...] = tuple(2 ** (k + 10) / 1e9 for k in range(21))
REDIS_COMMAND_LATENCY = declare(
    "redis_command_latency_seconds", Kind.HISTOGRAM,
    "Server-side latency per command from Redis 7 LATENCY HISTOGRAM (cumulative, power-of-two"
    " buckets, since the last stats reset: take rate() for a window); sum from INFO"
    " commandstats; the busiest commands by name, the rest folded into command=\"other\".",
    ("cache", "command"), REDIS)
REDIS_CLUSTER_NODE_UP = declare(
    "redis_cluster_node_up", Kind.GAUGE,
    "1 if this node of a Redis Cluster target answered in this scrape, 0 if not; the"
    " target's other nodes are reported all the same (cluster targets only).",
    ("cache", "node", "role"), REDIS)
REDIS_CLUSTER_PARTIAL = declare(
    "redis_cluster_partial", Kind.GAUGE,
    "1 if some node of a Redis Cluster target did not answer in this scrape (its figures are"
    " missing from the sums by cache), 0 if every node did (cluster targets only).",
    ("cache",), REDIS)
REDIS_FINDINGS = declare(
    "redis_findings", Kind.GAUGE,
    "1 while a `cachewatch doctor` rule that INFO alone can judge finds this cause of misses"
    " (or trouble ahead) on the server, 0 while it does not; `cachewatch doctor redis://...`"
    " gives the evidence and the fix, and the rules that need a key sample or timed PINGs.",
    ("cache", "rule"), REDIS)
