"""The Memcached source's part of the metric contract: its detail families, read from ``stats``,
and the ``layer`` it feeds the core families as.

The core families (``cachewatch.metrics.contract``) are re-exported here, so a module of this
source reads one contract: ``contract.CACHE_LOOKUPS`` and its own families alike.
"""

from __future__ import annotations

from ...metrics.contract import *  # noqa: F403 - the core families, read through this module
from ...metrics.contract import Kind, declare

# The ``layer`` label value this source's lookups and latency carry.
LAYER = "memcached"

MEMCACHED = "memcached"
MEMCACHED_LIMIT_BYTES = declare(
    "memcached_limit_bytes", Kind.GAUGE,
    "The memory limit for items (stats limit_maxbytes, the -m option).", ("cache",), MEMCACHED)
MEMCACHED_ITEMS_STORED = declare(
    "memcached_items_stored_total", Kind.COUNTER,
    "Items stored since the server started (stats total_items): the base of the wasted share.",
    ("cache",), MEMCACHED)
MEMCACHED_EVICTED_UNFETCHED = declare(
    "memcached_evicted_unfetched_total", Kind.COUNTER,
    "Items evicted without ever being read (stats evicted_unfetched): memory and writes spent"
    " on nothing; a share of items stored, in PromQL.", ("cache",), MEMCACHED)
MEMCACHED_EXPIRED_UNFETCHED = declare(
    "memcached_expired_unfetched_total", Kind.COUNTER,
    "Items whose TTL ran out without them ever being read (stats expired_unfetched): cached for"
    " nobody.", ("cache",), MEMCACHED)
MEMCACHED_CONNECTIONS = declare(
    "memcached_connections", Kind.GAUGE,
    "Client connections open now, the exporter's own included (stats curr_connections).",
    ("cache",), MEMCACHED)
MEMCACHED_INFO = declare(
    "memcached_info", Kind.INFO,
    "Memcached server version; always 1.", ("cache", "version"), MEMCACHED)
