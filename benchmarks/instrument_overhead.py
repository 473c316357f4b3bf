"""Per-call overhead of cachewatch.instrument, side by side with the uninstrumented cache.

Times a cache hit (the hot path) through plain functools.lru_cache vs @cachewatch cached, and a
cachetools-decorated function with a plain vs an instrumented LRUCache, plus the cost of one
CacheStats.hit() call for caches instrumented by hand. Goal: under 1 µs added to an lru_cache hit.

    python benchmarks/instrument_overhead.py [--calls 2000000]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import timeit

import cachetools

from cachewatch.instrument import Caches, CacheStats, cached, instrument_cachetools


def per_call_ns(func, calls: int, repeat: int = 7) -> float:
    """Median over ``repeat`` runs of ``calls`` hits, in nanoseconds per call."""
    func(1)  # warm: the key is cached from here on
    runs = timeit.repeat(lambda: func(1), number=calls, repeat=repeat)
    return statistics.median(runs) / calls * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    args = parser.parse_args()
    caches = Caches()

    @functools.lru_cache(maxsize=1024)
    def plain_lru(x: int) -> int:
        return x * 2

    @cached("bench-lru", maxsize=1024, into=caches)
    def counted_lru(x: int) -> int:
        return x * 2

    plain_tc = cachetools.cached(cachetools.LRUCache(maxsize=1024))(lambda x: x * 2)
    tc_cache = cachetools.LRUCache(maxsize=1024)
    instrument_cachetools(tc_cache, "bench-tc", into=caches)
    counted_tc = cachetools.cached(tc_cache)(lambda x: x * 2)
    stats = CacheStats("manual")

    rows = [
        ("functools.lru_cache hit", per_call_ns(plain_lru, args.calls),
         per_call_ns(counted_lru, args.calls)),
        ("cachetools LRUCache hit", per_call_ns(plain_tc, args.calls),
         per_call_ns(counted_tc, args.calls)),
    ]
    hook = statistics.median(timeit.repeat(stats.hit, number=args.calls, repeat=7))
    print(f"{'hot path (ns per call)':<28}{'plain':>10}{'instrumented':>14}{'added':>10}")
    for name, plain, counted in rows:
        print(f"{name:<28}{plain:>10.1f}{counted:>14.1f}{counted - plain:>+10.1f}")
    print(f"{'CacheStats.hit() alone':<28}{'':>10}{hook / args.calls * 1e9:>14.1f}")
    assert caches["bench-lru"].payload()["stats"]["hitCount"] > 0  # it did count


if __name__ == "__main__":
    main()
