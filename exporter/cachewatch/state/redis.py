"""``redis://``: state shared by receiver replicas (an engine these users already run).

De-duplication is shared: an event id is claimed with ``ZADD NX`` in one sorted set per source
(scored by time, trimmed to the source's window, so memory stays bounded however many events
pass), and the counters of the event that claimed it are added in the same Lua script, so a
claim is never stored without its counts. Counters are per replica (``replica_id``): each
replica exports what it counted, and Prometheus sums them. Cumulative records (pushing
instances' last values) are shared and updated under ``WATCH``, so an instance may push to any
replica.

Every key of a source carries the source in braces (``cachewatch:{<source>}:...``): a script
touches one hash slot, so Redis Cluster works too. Durability is Redis's own: with
``appendonly yes`` and ``appendfsync always`` an acknowledged event survives a Redis crash; with
``everysec`` about the last second may be lost; with no AOF, everything since the last snapshot.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis
from redis.exceptions import NoScriptError, RedisError, ResponseError, WatchError

from ..fields import redact
from .base import Batch, Counts, Outcome, StateError, Store, decode, encode, encoded, tally
from .resp import FastRedis, RedisReplyError, Unreachable

log = logging.getLogger("cachewatch.state")

# KEYS: counters hash, seen zset. ARGV: window, counters' TTL, then triples (id or "",
# #counts, #if_seen) followed by the field/delta pairs they announce. Returns 1 (new) or 0
# (seen) per change.
CLAIM = """
local window = tonumber(ARGV[1])
local now = redis.call('TIME')
local score = tonumber(now[1]) * 1000000 + tonumber(now[2])
local totals, order, applied = {}, {}, {}
local i = 3
while i <= #ARGV do
  local id, n_new, n_seen = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  i = i + 3
  local new = 1
  if id ~= '' then new = redis.call('ZADD', KEYS[2], 'NX', score, id) end
  applied[#applied + 1] = new
  local first, count = i, n_new
  if new == 0 then first, count = i + 2 * n_new, n_seen end
  for j = first, first + 2 * count - 1, 2 do
    local field = ARGV[j]
    if totals[field] == nil then order[#order + 1] = field; totals[field] = 0 end
    totals[field] = totals[field] + tonumber(ARGV[j + 1])
  end
  i = i + 2 * (n_new + n_seen)
end
for _, field in ipairs(order) do redis.call('HINCRBYFLOAT', KEYS[1], field, totals[field]) end
if #order > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
local size = redis.call('ZCARD', KEYS[2])
if size > window + window / 10 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, size - window - 1) end
return applied
"""
WATCH_RETRIES = 20
FAST_OFF_FOR = 10.0  # after the loop's connection failed, the writer thread takes the writes
# A replica id that has written nothing for this long is forgotten (a pod replaced under a new
# name leaves its counters behind; Prometheus saw a new series start for its successor anyway).
COUNTERS_TTL = 30 * 86400


class RedisStore(Store):
    """State in Redis: shared de-duplication and records, per-replica counters."""

    backend = "redis"

    def __init__(self, url: str, replica: str, timeout: float = 2.0) -> None:
        self.replica = replica
        self.where = redact(url)
        try:
            self._redis = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout,
                health_check_interval=15)
        except ValueError as exc:
            raise StateError(f"state.url {self.where}: {exc}") from exc
        self._claim = self._redis.register_script(CLAIM)
        self._fast = FastRedis(url, timeout)
        self._fast_off_until = 0.0
        self._warned = False

    def _counters(self, source: str) -> str:
        return f"cachewatch:{{{source}}}:counters:{self.replica}"

    def load(self, source: str) -> Counts:
        try:
            stored = self._redis.hgetall(self._counters(source))
        except RedisError as exc:
            raise StateError(f"reading {self.where}: {exc}") from exc
        self._check_durability()
        return {decode(field): float(value) for field, value in stored.items()}

    def write(self, batches: list[Batch]) -> list[Outcome | Exception]:
        results: list[Outcome | Exception | None] = [None] * len(batches)
        # The claims of one source go in one script call, whatever the number of requests
        # they came from: one round trip and one atomic step for the whole group.
        groups: dict[tuple[str, int], list[int]] = {}
        for i, batch in enumerate(batches):
            if batch.update is None:
                groups.setdefault((batch.source, batch.window), []).append(i)
        try:
            merged = [Batch(source, [c for i in members for c in batches[i].changes], window)
                      for (source, window), members in groups.items()]
            replies = self._claims(merged) if merged else []
            for members, reply in zip(groups.values(), replies, strict=True):
                offset = 0
                for i in members:
                    changes = batches[i].changes
                    if isinstance(reply, Exception):
                        results[i] = StateError(f"writing {self.where}: {reply}")
                        continue
                    applied = [bool(x) for x in reply[offset:offset + len(changes)]]
                    offset += len(changes)
                    results[i] = Outcome(applied, tally(changes, applied))
            for i, batch in enumerate(batches):
                if batch.update is not None:
                    results[i] = self._update(batch)
        except RedisError as exc:
            raise StateError(f"writing {self.where}: {exc}") from exc
        return [r if r is not None else StateError("not written") for r in results]

    def _claims(self, batches: list[Batch]) -> list[Any]:
        """Run the claim script once per (merged) batch, in one round trip (EVALSHA; loaded on
        first use and again after Redis restarted without it)."""
        for attempt in (1, 2):
            if len(batches) == 1:
                try:
                    return [self._redis.evalsha(self._claim.sha, 2, *_claim_keys(self, batches[0]),
                                                *_claim_args(batches[0]))]
                except NoScriptError:
                    replies: list[Any] = [NoScriptError()]
                except ResponseError as exc:
                    return [exc]
            else:
                pipe = self._redis.pipeline(transaction=False)
                for batch in batches:
                    pipe.evalsha(self._claim.sha, 2, *_claim_keys(self, batch),
                                 *_claim_args(batch))
                replies = pipe.execute(raise_on_error=False)
            if attempt == 1 and any(isinstance(r, NoScriptError) for r in replies):
                self._redis.script_load(CLAIM)
                continue
            return replies
        raise AssertionError("unreachable")

    async def write_now(self, batch: Batch) -> Outcome | Exception | None:
        """A plain claim (a webhook's events) goes from the loop straight to Redis; an update
        (a pushed record: read, compute, write under WATCH) goes to the writer thread."""
        if batch.update is not None or time.monotonic() < self._fast_off_until:
            return None
        command = ("EVALSHA", self._claim.sha, 2, *_claim_keys(self, batch),
                   *_claim_args(batch))
        try:
            reply = await self._fast.call(*command)
            if isinstance(reply, RedisReplyError) and str(reply).startswith("NOSCRIPT"):
                await self._fast.call("SCRIPT", "LOAD", CLAIM)  # Redis restarted without it
                reply = await self._fast.call(*command)
        except Unreachable as exc:
            # Nothing was sent: let the general client try (it says whether Redis is down).
            self._fast_off_until = time.monotonic() + FAST_OFF_FOR
            log.warning("redis state: the event loop's connection failed, writes go through"
                        " the writer thread for a while", extra={"error": str(exc)})
            return None
        except StateError as exc:
            return exc
        if isinstance(reply, RedisReplyError):
            return StateError(f"writing {self.where}: {reply}")
        applied = [bool(flag) for flag in reply]
        return Outcome(applied, tally(batch.changes, applied))

    def _update(self, batch: Batch) -> Outcome:
        """Read-modify-write of one shared record plus this replica's counters, atomically."""
        update = batch.update
        assert update is not None
        assert not batch.changes
        key = f"cachewatch:{{{batch.source}}}:record:{update.key}"
        with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(WATCH_RETRIES):
                try:
                    pipe.watch(key)
                    stored = pipe.get(key)
                    record, counts, value = update.apply(
                        json.loads(stored) if stored is not None else None)
                    pipe.multi()
                    pipe.set(key, json.dumps(record, separators=(",", ":")),
                             ex=max(1, int(update.keep_for)))
                    counters = self._counters(batch.source)
                    for field, delta in counts.items():
                        pipe.hincrbyfloat(counters, encode(field), delta)
                    pipe.expire(counters, COUNTERS_TTL)
                    pipe.execute()
                    return Outcome([], dict(counts), value)
                except WatchError:
                    continue  # another replica changed the record meanwhile: read it again
        raise StateError(f"record {update.key!r} kept changing under {WATCH_RETRIES} tries")

    def ping(self) -> None:
        try:
            self._redis.ping()
        except RedisError as exc:
            raise StateError(f"{self.where}: {exc}") from exc

    def _check_durability(self) -> None:
        """Say once if Redis would lose acknowledged state on its own crash (no AOF)."""
        if self._warned:
            return
        self._warned = True
        try:
            appendonly = self._redis.config_get("appendonly").get("appendonly")
        except RedisError:
            return  # CONFIG may be renamed or denied: nothing to say
        if appendonly not in ("yes", b"yes"):
            log.warning("redis state has no append-only file: a crash of Redis loses what was"
                        " acknowledged since its last snapshot; run it with appendonly yes",
                        extra={"state": self.where})

    def close(self) -> None:
        self._fast.close()
        self._redis.close()


def _claim_keys(store: RedisStore, batch: Batch) -> tuple[str, str]:
    return store._counters(batch.source), f"cachewatch:{{{batch.source}}}:seen"


def _claim_args(batch: Batch) -> list[Any]:
    args: list[Any] = [batch.window, COUNTERS_TTL]
    for change in batch.changes:
        seen = change.if_seen or {}
        args += [change.once.hex() if change.once is not None else "", len(change.counts),
                 len(seen)]
        for counts in (change.counts, seen):
            for key, delta in counts.items():
                args += [encoded(key), repr(float(delta))]
    return args
