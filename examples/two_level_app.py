"""A two-level cache, measured with cachewatch: in-process L1 (cachetools LRU) over Redis L2.

A lookup tries L1; on an L1 miss it tries Redis; on a Redis miss it "loads from the database"
(a small computation standing in for a query) and fills both levels. The app counts its own
hits, pushes everything to a cachewatch exporter, and prints what it counted, so you can check
that the exporter's effective hit rate is the same number:

    pip install '.[examples]'          # cachewatch, cachetools and redis-py
    cachewatch serve &                 # or make run
    python examples/two_level_app.py --redis redis://127.0.0.1:6379 \\
        --exporter http://127.0.0.1:10150 --requests 20000

    effective hit ratio in PromQL:
    sum by (cache) (rate(cachewatch_cache_effective_hits_total{cache="catalog"}[5m]))
      / sum by (cache) (rate(cachewatch_cache_lookups_total{layer="app",cache="catalog"}[5m]))
"""

from __future__ import annotations

import argparse
import json
import random
import time

try:
    import cachetools
    import redis
except ImportError as missing:  # the first thing a newcomer would otherwise see is a traceback
    raise SystemExit(f"{missing.name} is not installed: pip install 'cachewatch[examples]' "
                     "(or pip install '.[examples]' in a checkout)") from None

from cachewatch.instrument import Caches, CacheStats, instrument_cachetools


class Catalog:
    """L1 (cachetools LRU, in the process) over L2 (Redis) over the "database"; each level
    counted into ``caches``, L1 declaring L2 as its parent so the exporter can compute the
    chain's effective hit rate."""

    def __init__(self, store: redis.Redis, caches: Caches, l1_size: int) -> None:
        self.store = store
        self.l1 = cachetools.LRUCache(maxsize=l1_size)
        # L1 declares its parent: the app's own count of Redis lookups made on L1 misses.
        self.l1_stats = instrument_cachetools(self.l1, "catalog", parent="catalog-redis",
                                              into=caches)
        self.l1_stats.parent_layer = "redis"
        self.l2_stats = caches.add(CacheStats("catalog-redis"))

    def lookup(self, key: str) -> bytes:
        """The value of ``key``, from the first level that has it."""
        try:
            return self.l1[key]
        except KeyError:
            pass
        started = time.perf_counter()
        value = self.store.get(key)
        self.l2_stats.observe(time.perf_counter() - started)
        if value is not None:
            self.l2_stats.hit()
        else:
            self.l2_stats.miss()
            load_started = time.perf_counter()
            value = json.dumps({"id": key, "price": sum(map(ord, key)) % 997}).encode()
            self.store.set(key, value, ex=3600)
            self.l2_stats.load(time.perf_counter() - load_started)
        self.l1[key] = value
        return value


def zipf_keys(seed: int, keys: int) -> tuple[list[str], list[float]]:
    """``keys`` product keys and Zipf-like weights: a few keys are hot, most are cold."""
    return [f"product:{seed}:{k}" for k in range(keys)], [1 / (r + 1) for r in range(keys)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--exporter", default="http://127.0.0.1:10150")
    parser.add_argument("--instance", default=None, help="instance id (default host:pid)")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=2_000)
    parser.add_argument("--l1-size", type=int, default=200)
    parser.add_argument("--push-interval", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    caches = Caches()
    catalog = Catalog(redis.Redis.from_url(args.redis), caches, args.l1_size)
    l1_stats, l2_stats = catalog.l1_stats, catalog.l2_stats
    pusher = caches.push_to(args.exporter, instance=args.instance,
                            interval=args.push_interval)

    rnd = random.Random(args.seed)
    keys, weights = zipf_keys(args.seed, args.keys)
    for key in rnd.choices(keys, weights=weights, k=args.requests):
        catalog.lookup(key)
    pusher.stop(flush=True)  # the last counts land before the numbers are printed

    lookups = l1_stats.hits + l1_stats.misses
    print(json.dumps({
        "instance": pusher.instance,
        "lookups": lookups,
        "l1_hits": l1_stats.hits,
        "l2_hits": l2_stats.hits,
        "l2_misses": l2_stats.misses,
        "effective_hit_ratio": (l1_stats.hits + l2_stats.hits) / lookups,
        "pushes": pusher.pushed,
        "failed_pushes": pusher.failed,
    }))


if __name__ == "__main__":
    main()
