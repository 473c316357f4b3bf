"""The application caches' part of the metric contract: what the push API and the in-process
instrumentation export besides the core families.

The core families (``cachewatch.metrics.contract``) are re-exported here, so a module of this
source reads one contract: ``contract.CACHE_LOOKUPS`` and its own families alike.
"""

from __future__ import annotations

from ...metrics.contract import *  # noqa: F403 - the core families, read through this module
from ...metrics.contract import LATENCY_BUCKETS, Kind, declare

# The ``layer`` label value this source's lookups and latency carry.
LAYER = "app"

APP = "app"
CACHE_EFFECTIVE_HITS = declare(
    "cache_effective_hits_total", Kind.COUNTER,
    "Multi-level caches: lookups served by this level or a level behind it (L1 hits + L2 hits"
    " on L1 misses); effective hit ratio = this / cachewatch_cache_lookups_total of this level.",
    ("layer", "cache"), APP)
APP_CACHE_LOADS = declare(
    "app_cache_loads_total", Kind.COUNTER,
    "Values loaded into the cache after a miss, by result (success, failure).",
    ("cache", "result"), APP)
APP_CACHE_LOAD_SECONDS = declare(
    "app_cache_load_seconds_total", Kind.COUNTER,
    "Time spent loading values (Caffeine totalLoadTime); per load = this / loads.",
    ("cache",), APP)
APP_CACHE_EVICTION_WEIGHT = declare(
    "app_cache_eviction_weight_total", Kind.COUNTER,
    "Weight of evicted entries (Caffeine evictionWeight).",
    ("cache",), APP)
APP_CACHE_PUTS = declare(
    "app_cache_puts_total", Kind.COUNTER,
    "Entries put into the cache (Micrometer cache_puts).",
    ("cache",), APP)
APP_CACHE_RESETS = declare(
    "app_cache_resets_total", Kind.COUNTER,
    "Times an instance's counters went backwards (a restart), handled as a reset.",
    ("cache",), APP)
APP_CACHE_INSTANCES = declare(
    "app_cache_instances", Kind.GAUGE,
    "Instances reporting this cache now (pushed within app.instance_ttl).",
    ("cache",), APP)
APP_CACHE_LAST_PUSH = declare(
    "app_cache_last_push_timestamp_seconds", Kind.GAUGE,
    "When each live instance last pushed; the series goes when the instance expires.",
    ("app_instance",), APP)
APP_CACHE_PARENT = declare(
    "app_cache_parent_info", Kind.INFO,
    "Multi-level caches: the level behind this cache (L1 -> L2).",
    ("cache", "parent", "parent_layer"), APP)
APP_PUSH_REJECTED = declare(
    "app_push_rejected_total", Kind.COUNTER,
    "Pushes or caches refused, by reason (auth, too_large, malformed, cache_cap, instance_cap).",
    ("reason",), APP)
# The ``le`` keys of a pushed latency histogram, as the push's models check and the collector
# stores them.
LATENCY_LE = [*(repr(float(b)) for b in LATENCY_BUCKETS), "+Inf"]
