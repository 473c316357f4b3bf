"""The Redis doctor's rules: measured signals in, findings with evidence and a fix out.

One function per rule, no I/O: each reads ``Signals`` and returns a ``Finding`` or None. The
rules follow the usual causes of a low application-cache hit rate: a cache too small for its
working set, memory without a limit or a policy that cannot evict, one TTL for all data, no
preloading of hot keys and no local tier in front of Redis, and latency that is the network's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .. import contract
from .signals import Signals

NEAR_MAXMEMORY = 0.9  # used_memory at this share of maxmemory or more: the cache is full
MIN_MISSES = 100  # fewer misses say nothing about why they happen
EXPIRED_SHARE = 0.5  # expirations at half the misses or more: TTLs drive the misses
NO_TTL_SHARE = 0.5  # under volatile-*, most keys without a TTL cannot be evicted
HOT_MIN_FREQUENCY = 20  # LFU counter (log scale: a few hundred reads at lfu-log-factor 10)
HOT_OVER_MEDIAN = 4  # ... and this many times the sample's median
LISTED = 5  # keys named in a finding
CHURN_SECONDS = 600  # evicted bytes to take back in: ten minutes of the measured rate
# Evictions in the window below this are not a rate: at maxmemory the doctor's own commands
# (INFO, PING: their buffers count as memory) evict a few keys (measured on Redis 7.0).
MIN_WINDOW_EVICTIONS = 50
# The client's P99 at the contract's target or above, inside the server a fifth of it or less.
SLOW_CLIENT = contract.LATENCY_P99_TARGET_SECONDS
FAST_SERVER = contract.LATENCY_P99_TARGET_SECONDS / 5
ADMIN = ("info", "config", "client", "slowlog", "latency", "debug", "scan", "memory", "object",
         "cluster", "keys", "save", "bgsave", "flush")


@dataclass(frozen=True)
class Options:
    """The rules' own thresholds that a user may set."""

    big_key_bytes: int = 1 << 20


@dataclass(frozen=True)
class Finding:
    """One cause of misses (or of trouble ahead): what was measured and what to change."""

    rule: str
    message: str
    fix: str
    evidence: dict[str, float | str | list[str]] = field(default_factory=dict)


def _mb(value: float) -> str:
    return f"{value / (1 << 20):.1f} MB"


def cache_too_small(s: Signals, _: Options) -> Finding | None:
    evicted, used, limit = s.number("evicted_keys"), s.number("used_memory"), \
        s.number("maxmemory")
    if limit <= 0 or evicted <= 0 or used < NEAR_MAXMEMORY * limit:
        return None
    keys, _ = s.keyspace()
    rate = s.rates.get("evicted_keys", 0.0)
    if rate * s.window < MIN_WINDOW_EVICTIONS:
        rate = 0.0
    if rate > 0 and keys > 0:
        grow = rate * (used / keys) * CHURN_SECONDS
        size, basis = limit + grow, (f"{rate:.1f} evictions/s at {_mb(used / keys)} a key: "
                                     f"ten minutes of them")
    else:
        size, basis = limit * 1.5, "no eviction in the window: half as much again, then watch"
    target = int(-(-size // (1 << 20)))
    return Finding(
        "cache-too-small",
        f"{evicted:.0f} keys evicted with used_memory at {used / limit:.0%} of maxmemory "
        f"({_mb(limit)}): the working set does not fit, and evicted keys come back as misses",
        f"raise maxmemory to about {target}mb (CONFIG SET maxmemory {target}mb, and in "
        f"redis.conf) and check that evicted_keys stops growing; sized from {basis}",
        {"evicted_keys": evicted, "used_memory": used, "maxmemory": limit,
         "evictions_per_second": round(rate, 3)})


def maxmemory_unset(s: Signals, _: Options) -> Finding | None:
    if s.number("maxmemory") > 0:
        return None
    policy = s.info.get("maxmemory_policy", "")
    return Finding(
        "maxmemory-unset",
        f"maxmemory is 0 (no limit; policy {policy}): memory grows until the host runs out, "
        "and then writes fail or the kernel kills Redis",
        "set a limit below what the host can give and a policy that evicts, like CONFIG SET "
        "maxmemory 2gb and CONFIG SET maxmemory-policy allkeys-lru (and in redis.conf)",
        {"maxmemory": 0, "maxmemory_policy": policy, "used_memory": s.number("used_memory")})


def noeviction(s: Signals, _: Options) -> Finding | None:
    if s.number("maxmemory") <= 0 or s.info.get("maxmemory_policy") != "noeviction":
        return None
    return Finding(
        "noeviction",
        f"maxmemory-policy is noeviction with maxmemory {_mb(s.number('maxmemory'))}: at the "
        "limit writes fail with OOM errors instead of making room",
        "for a cache, CONFIG SET maxmemory-policy allkeys-lru (allkeys-lfu when a few keys "
        "take most reads), and in redis.conf",
        {"maxmemory_policy": "noeviction", "maxmemory": s.number("maxmemory"),
         "used_memory": s.number("used_memory")})


def volatile_without_ttl(s: Signals, _: Options) -> Finding | None:
    policy = s.info.get("maxmemory_policy", "")
    keys, expires = s.keyspace()
    if not policy.startswith("volatile-") or keys <= 0 or expires / keys >= NO_TTL_SHARE:
        return None
    return Finding(
        "volatile-without-ttl",
        f"maxmemory-policy {policy} evicts only keys with a TTL, and {1 - expires / keys:.0%} "
        f"of the {keys:.0f} keys have none: at maxmemory there is next to nothing to evict",
        "give cached keys a TTL (SET key value EX seconds), or CONFIG SET maxmemory-policy "
        "allkeys-lru",
        {"maxmemory_policy": policy, "keys": keys, "keys_with_ttl": expires})


def expirations_dominate_misses(s: Signals, _: Options) -> Finding | None:
    misses, expired = s.number("keyspace_misses"), s.number("expired_keys")
    evicted, hits = s.number("evicted_keys"), s.number("keyspace_hits")
    if misses < MIN_MISSES or expired < EXPIRED_SHARE * misses or expired <= evicted:
        return None
    return Finding(
        "expirations-dominate-misses",
        f"{expired:.0f} keys expired against {misses:.0f} misses (hit rate "
        f"{hits / (hits + misses):.0%}, {evicted:.0f} evictions): keys expire before they "
        "are read again",
        "the TTLs are shorter than the reuse interval: set a TTL per data type from how often "
        "it is read and how long it stays true (longer for reference data, shorter for "
        "volatile data) instead of one TTL for all",
        {"expired_keys": expired, "keyspace_misses": misses, "keyspace_hits": hits,
         "evicted_keys": evicted})


def hot_keys(s: Signals, _: Options) -> Finding | None:
    if not s.frequency:
        return None
    import statistics  # only the doctor samples keys: a scrape's findings never load it

    median = statistics.median(s.frequency.values())
    hot = sorted((k for k, f in s.frequency.items()
                  if f >= HOT_MIN_FREQUENCY and f >= HOT_OVER_MEDIAN * max(median, 1)),
                 key=lambda k: -s.frequency[k])
    if not hot:
        return None
    named = ", ".join(f"{k} ({s.frequency[k]})" for k in hot[:LISTED])
    return Finding(
        "hot-keys",
        f"{len(hot)} of {len(s.frequency)} sampled keys are read far more than the rest (LFU "
        f"counter against a median of {median:g}): {named}",
        "preload these keys when the application starts (a cold cache misses them first), "
        "or keep them in a small in-process cache in front of Redis (a local tier)",
        {"sampled": len(s.frequency), "median_frequency": median, "keys": hot[:LISTED]})


def big_keys(s: Signals, options: Options) -> Finding | None:
    big = sorted((k for k, size in s.memory.items() if size >= options.big_key_bytes),
                 key=lambda k: -s.memory[k])
    if not big:
        return None
    named = ", ".join(f"{k} ({_mb(s.memory[k])})" for k in big[:LISTED])
    return Finding(
        "big-keys",
        f"{len(big)} of {len(s.memory)} sampled keys use {_mb(options.big_key_bytes)} or more "
        f"(MEMORY USAGE): {named}; each read moves it whole, and evicting one frees much at "
        "once",
        "split them (a hash per group of fields, a list in pages) or compress the values, and "
        "read parts (HGET, GETRANGE) rather than the whole",
        {"sampled": len(s.memory), "big_key_bytes": options.big_key_bytes, "keys": big[:LISTED]})


def _server_p99(s: Signals) -> float | None:
    """The slowest served command's P99 inside Redis (INFO latencystats), seconds."""
    found = [float(v.split("p99=", 1)[1].split(",", 1)[0]) / 1e6
             for k, v in s.info.items()
             if k.startswith("latency_percentiles_usec_") and "p99=" in v
             and not k.removeprefix("latency_percentiles_usec_").startswith(ADMIN)]
    return max(found) if found else None


def network_latency(s: Signals, _: Options) -> Finding | None:
    server = _server_p99(s)
    if not s.pings or server is None:
        return None
    client = s.pings[min(len(s.pings) - 1, int(len(s.pings) * 0.99))]
    if client < SLOW_CLIENT or server > FAST_SERVER:
        return None
    return Finding(
        "network-latency",
        f"P99 round trip {client * 1000:.1f} ms seen by the client ({len(s.pings)} PINGs), "
        f"{server * 1000:.2f} ms inside Redis for its slowest command: the time is spent in "
        "the network or the client, not in Redis",
        "bring the client closer (same zone or host), reuse connections from a pool instead "
        "of connecting (and TLS handshaking) per request, and check the client's CPU",
        {"client_p99_seconds": client, "server_p99_seconds": server, "pings": len(s.pings)})


RULES: tuple[Callable[[Signals, Options], Finding | None], ...] = (
    cache_too_small, maxmemory_unset, noeviction, volatile_without_ttl,
    expirations_dominate_misses, hot_keys, big_keys, network_latency)


# The rules INFO alone can judge: the exporter runs them on every scrape.
FROM_INFO: tuple[tuple[str, Callable[[Signals, Options], Finding | None]], ...] = (
    ("cache-too-small", cache_too_small), ("maxmemory-unset", maxmemory_unset),
    ("noeviction", noeviction), ("volatile-without-ttl", volatile_without_ttl),
    ("expirations-dominate-misses", expirations_dominate_misses))


def from_info(info: dict[str, str], keyspace: tuple[float, float] | None = None
              ) -> dict[str, bool]:
    """Rule name -> whether it finds something in one ``INFO``, for the rules of
    ``FROM_INFO`` (no window: the too-small rule sizes from the cumulative counters);
    ``keyspace``: its (keys, keys with a TTL) when the caller has summed them already."""
    signals, options = Signals(info, {}, 0.0, counted=keyspace), Options()
    return {name: rule(signals, options) is not None for name, rule in FROM_INFO}


def diagnose(signals: Signals, options: Options | None = None) -> list[Finding]:
    """Every finding, in the order of ``RULES``."""
    options = options or Options()
    return [f for rule in RULES if (f := rule(signals, options)) is not None]
