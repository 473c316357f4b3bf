"""What the Redis doctor measures, within fixed bounds, before any rule runs.

- ``INFO`` (default, latencystats, commandstats) twice, ``window`` seconds apart: counters as
  they are, and their rates when the window saw any change (evictions per second).
- A sample of at most ``sample`` keys: ``SCAN`` with ``COUNT``, one call at a time, until the
  cursor is back at 0 or the sample is full. ``KEYS`` and ``MONITOR`` are never sent. Each
  sampled key gets ``MEMORY USAGE`` (big keys) and, under an LFU policy, ``OBJECT FREQ`` (hot
  keys), pipelined. On Redis 7.0 ``OBJECT FREQ`` counts as a keyspace hit (measured; ``MEMORY
  USAGE`` and ``SCAN`` do not), so the sample adds at most ``sample`` hits to the server's
  counters: a reason to sample a replica (``--replica``).
- ``pings`` timed ``PING`` round trips: the client-observed latency, network included.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from ....resp import ReplyError
from ..client import ClientCache
from ..info import parse_info, parse_nested
from ..node import INFO
from ..settings import RedisTarget

SCAN_COUNT = 100  # keys the server looks at per SCAN call: small steps, no long command


@dataclass
class Signals:
    """Everything the rules look at."""

    info: dict[str, str]
    rates: dict[str, float]  # per second over the window, for the counters that moved
    window: float
    memory: dict[str, int] = field(default_factory=dict)  # sampled key -> bytes
    frequency: dict[str, int] = field(default_factory=dict)  # sampled key -> LFU counter
    pings: list[float] = field(default_factory=list)  # seconds, sorted
    counted: tuple[float, float] | None = None  # ``keyspace()``, when known from elsewhere

    def number(self, key: str) -> float:
        """An INFO field as a number (0 when absent or not a number)."""
        try:
            return float(self.info.get(key, 0))
        except ValueError:
            return 0.0

    def keyspace(self) -> tuple[float, float]:
        """(keys, keys with a TTL) over every database."""
        if self.counted is not None:
            return self.counted
        keys = expires = 0.0
        for key, value in self.info.items():
            if key.startswith("db") and key[2:].isdigit():
                counts = parse_nested(value)
                keys += float(counts.get("keys", 0))
                expires += float(counts.get("expires", 0))
        return keys, expires


_RATED = ("evicted_keys", "expired_keys", "keyspace_hits", "keyspace_misses")


async def _info(clients: ClientCache, target: RedisTarget) -> dict[str, str]:
    info: dict[str, str] = {}
    for reply in await clients.call(target, *INFO):
        info.update(parse_info(reply))  # type: ignore[arg-type]
    return info


async def _sample(clients: ClientCache, target: RedisTarget, limit: int,
                  lfu: bool) -> tuple[dict[str, int], dict[str, int]]:
    """``MEMORY USAGE`` (and ``OBJECT FREQ`` under LFU) of at most ``limit`` keys from SCAN."""
    keys: list[bytes] = []
    cursor = b"0"
    while len(keys) < limit:
        (reply,) = await clients.call(target, ("SCAN", cursor, "COUNT", str(SCAN_COUNT)))
        cursor, batch = reply  # type: ignore[misc]
        keys.extend(batch[:limit - len(keys)])  # type: ignore[index]
        if cursor == b"0":
            break
    per_key = (("MEMORY", "USAGE", "__key__"), ("OBJECT", "FREQ", "__key__")) if lfu \
        else (("MEMORY", "USAGE", "__key__"),)
    commands = [tuple(key if part == "__key__" else part for part in command)
                for key in keys for command in per_key]
    replies = await clients.call(target, *commands, raise_errors=False) if commands else []
    memory, frequency = {}, {}
    step = len(per_key)
    for index, key in enumerate(keys):
        name = key.decode("utf-8", "backslashreplace")
        usage = replies[index * step]
        if isinstance(usage, int):  # None: the key expired between SCAN and MEMORY USAGE
            memory[name] = usage
        if lfu and isinstance(freq := replies[index * step + 1], int):
            frequency[name] = freq
    return memory, frequency


async def _pings(clients: ClientCache, target: RedisTarget, count: int) -> list[float]:
    connection = await clients.connection(target)
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        await connection.call(("PING",))
        timings.append(time.perf_counter() - started)
    return sorted(timings)


async def gather(target: RedisTarget, sample_from: RedisTarget, *, window: float, sample: int,
                 pings: int, max_reply_bytes: int) -> Signals:
    """Measure ``target`` (and sample keys on ``sample_from``, the same or a replica)."""
    clients = ClientCache(max_reply_bytes)
    try:
        first = await _info(clients, target)
        started = time.monotonic()
        timings = await _pings(clients, target, pings)
        await asyncio.sleep(max(0.0, window - (time.monotonic() - started)))
        info = await _info(clients, target)
        elapsed = time.monotonic() - started
        rates = {key: (float(info.get(key, 0)) - float(first.get(key, 0))) / elapsed
                 for key in _RATED if elapsed > 0}
        lfu = "lfu" in info.get("maxmemory_policy", "")
        try:
            memory, frequency = await _sample(clients, sample_from, sample, lfu)
        except ReplyError as exc:  # an ACL user without +scan or +memory: no sample
            memory, frequency = {}, {}
            info["doctor_sample_error"] = str(exc)
        return Signals(info, rates, elapsed, memory, frequency, timings)
    finally:
        clients.close()
