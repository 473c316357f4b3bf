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
    l1 = cachetools.LRUCache(maxsize=args.l1_size)
    # L1 declares its parent: the app's own count of Redis lookups made on L1 misses.
    l1_stats = instrument_cachetools(l1, "catalog", parent="catalog-redis", into=caches)
    l1_stats.parent_layer = "redis"
    l2_stats = caches.add(CacheStats("catalog-redis"))
    store = redis.Redis.from_url(args.redis)
    pusher = caches.push_to(args.exporter, instance=args.instance,
                            interval=args.push_interval)

    def lookup(key: str) -> bytes:
        try:
            return l1[key]
        except KeyError:
            pass
        started = time.perf_counter()
        value = store.get(key)
        l2_stats.observe(time.perf_counter() - started)
        if value is not None:
            l2_stats.hit()
        else:
            l2_stats.miss()
            load_started = time.perf_counter()
            value = json.dumps({"id": key, "price": sum(map(ord, key)) % 997}).encode()
            store.set(key, value, ex=3600)
            l2_stats.load(time.perf_counter() - load_started)
        l1[key] = value
        return value

    rnd = random.Random(args.seed)
    weights = [1 / (rank + 1) for rank in range(args.keys)]  # Zipf-like: a few keys are hot
    keys = [f"product:{args.seed}:{k}" for k in range(args.keys)]
    for key in rnd.choices(keys, weights=weights, k=args.requests):
        lookup(key)
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
