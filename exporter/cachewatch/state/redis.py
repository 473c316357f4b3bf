"""``redis://``: state shared by receiver replicas (an engine these users already run).

De-duplication is shared: an event id is claimed with ``ZADD NX`` in one sorted set per source
(scored by time, trimmed to the source's window, so memory stays bounded however many events
pass), and the counters of the event that claimed it are added in the same Lua script, so a
claim is never stored without its counts. Counters are per replica (``replica_id``): each
replica exports what it counted, and Prometheus sums them. Cumulative records (app instances'
last values) are shared and updated under ``WATCH``, so an instance may push to any replica.

Every key of a source carries the source in braces (``cachewatch:{registry}:...``): a script
touches one hash slot, so Redis Cluster works too. Durability is Redis's own: with
``appendonly yes`` and ``appendfsync always`` an acknowledged event survives a Redis crash; with
``everysec`` about the last second may be lost; with no AOF, everything since the last snapshot.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError, ResponseError, WatchError

from ..fields import redact
from .base import Batch, Counts, Outcome, StateError, Store, decode, encode, encoded, tally

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
# A replica id that has written nothing for this long is forgotten (a pod replaced under a new
# name leaves its counters behind; Prometheus saw a new series start for its successor anyway).
COUNTERS_TTL = 30 * 86400


class RedisStore(Store):
    """State in Redis: shared de-duplication and records, per-replica counters.

    While serving, writes go through an asyncio client on the event loop itself
    (``asynchronous``): a round trip to Redis is network I/O the loop waits for like any other,
    with no thread hand-off per request. Reading the counters at start-up uses a plain client.
    """

    backend = "redis"
    asynchronous = True

    def __init__(self, url: str, replica: str, timeout: float = 2.0) -> None:
        self.replica = replica
        self.url = url
        self.timeout = timeout
        self.where = redact(url)
        try:
            self._redis = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout,
                health_check_interval=15)
        except ValueError as exc:
            raise StateError(f"state.url {self.where}: {exc}") from exc
        self._claim = self._redis.register_script(CLAIM)
        self._async: aioredis.Redis | None = None
        self._warned = False

    def _counters(self, source: str) -> str:
        return f"cachewatch:{{{source}}}:counters:{self.replica}"

    def _client(self) -> aioredis.Redis:
        """The asyncio client, made on the loop that serves (on first use)."""
        if self._async is None:
            self._async = aioredis.Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
                health_check_interval=15)
        return self._async

    def load(self, source: str) -> Counts:
        try:
            stored = self._redis.hgetall(self._counters(source))
        except RedisError as exc:
            raise StateError(f"reading {self.where}: {exc}") from exc
        self._check_durability()
        return _decoded(stored)

    async def aload(self, source: str) -> Counts:
        try:
            return _decoded(await self._client().hgetall(self._counters(source)))
        except RedisError as exc:
            raise StateError(f"reading {self.where}: {exc}") from exc

    def write(self, batches: list[Batch]) -> list[Outcome | Exception]:
        plan = _Plan(batches)
        try:
            plan.claimed(self._claims(plan.merged) if plan.merged else [])
            for i in plan.updates:
                plan.results[i] = self._update(batches[i])
        except RedisError as exc:
            raise StateError(f"writing {self.where}: {exc}") from exc
        return plan.done()

    async def awrite(self, batches: list[Batch]) -> list[Outcome | Exception]:
        plan = _Plan(batches)
        try:
            plan.claimed(await self._aclaims(plan.merged) if plan.merged else [])
            for i in plan.updates:
                plan.results[i] = await self._aupdate(batches[i])
        except RedisError as exc:
            raise StateError(f"writing {self.where}: {exc}") from exc
        return plan.done()

    def _claims(self, batches: list[Batch]) -> list[Any]:
        """Run the claim script once per (merged) batch, in one round trip (EVALSHA; loaded on
        first use and again after Redis restarted without it)."""
        for attempt in (1, 2):
            pipe = self._redis.pipeline(transaction=False)
            for batch in batches:
                pipe.evalsha(self._claim.sha, 2, *self._keys(batch), *_claim_args(batch))
            replies = pipe.execute(raise_on_error=False)
            if attempt == 1 and any(isinstance(r, NoScriptError) for r in replies):
                self._redis.script_load(CLAIM)
                continue
            return replies
        raise AssertionError("unreachable")

    async def _aclaims(self, batches: list[Batch]) -> list[Any]:
        client = self._client()
        for attempt in (1, 2):
            if len(batches) == 1:  # the common case: no pipeline to build
                try:
                    replies: list[Any] = [await client.evalsha(
                        self._claim.sha, 2, *self._keys(batches[0]), *_claim_args(batches[0]))]
                except NoScriptError as exc:
                    replies = [exc]
                except ResponseError as exc:
                    return [exc]
            else:
                pipe = client.pipeline(transaction=False)
                for batch in batches:
                    pipe.evalsha(self._claim.sha, 2, *self._keys(batch), *_claim_args(batch))
                replies = await pipe.execute(raise_on_error=False)
            if attempt == 1 and any(isinstance(r, NoScriptError) for r in replies):
                await client.script_load(CLAIM)
                continue
            return replies
        raise AssertionError("unreachable")

    def _keys(self, batch: Batch) -> tuple[str, str]:
        return self._counters(batch.source), f"cachewatch:{{{batch.source}}}:seen"

    def _update(self, batch: Batch) -> Outcome:
        """Read-modify-write of one shared record plus this replica's counters, atomically."""
        key = _record_key(batch)
        with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(WATCH_RETRIES):
                try:
                    pipe.watch(key)
                    stored = pipe.get(key)
                    pipe.multi()
                    outcome = self._queue_update(pipe, batch, key, stored)
                    pipe.execute()
                    return outcome
                except WatchError:
                    continue  # another replica changed the record meanwhile: read it again
        raise StateError(f"record {key!r} kept changing under {WATCH_RETRIES} tries")

    async def _aupdate(self, batch: Batch) -> Outcome:
        key = _record_key(batch)
        async with self._client().pipeline(transaction=True) as pipe:
            for _ in range(WATCH_RETRIES):
                try:
                    await pipe.watch(key)
                    stored = await pipe.get(key)
                    pipe.multi()
                    outcome = self._queue_update(pipe, batch, key, stored)
                    await pipe.execute()
                    return outcome
                except WatchError:
                    continue
        raise StateError(f"record {key!r} kept changing under {WATCH_RETRIES} tries")

    def _queue_update(self, pipe: Any, batch: Batch, key: str, stored: Any) -> Outcome:
        """Queue the new record and the counts in a MULTI (sync or asyncio pipeline alike)."""
        update = batch.update
        assert update is not None
        assert not batch.changes
        record, counts, value = update.apply(json.loads(stored) if stored is not None else None)
        pipe.set(key, json.dumps(record, separators=(",", ":")), ex=max(1, int(update.keep_for)))
        counters = self._counters(batch.source)
        for field, delta in counts.items():
            pipe.hincrbyfloat(counters, encode(field), delta)
        pipe.expire(counters, COUNTERS_TTL)
        return Outcome([], dict(counts), value)

    def ping(self) -> None:
        try:
            self._redis.ping()
        except RedisError as exc:
            raise StateError(f"{self.where}: {exc}") from exc

    async def aping(self) -> None:
        try:
            await self._client().ping()
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
        self._redis.close()

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
            self._async = None


class _Plan:
    """One write, planned: the claims of each source merged into one script call (one round
    trip and one atomic step for a whole group of requests), updates apart."""

    def __init__(self, batches: list[Batch]) -> None:
        self.batches = batches
        self.results: list[Outcome | Exception | None] = [None] * len(batches)
        self.groups: dict[tuple[str, int], list[int]] = {}
        self.updates = [i for i, b in enumerate(batches) if b.update is not None]
        for i, batch in enumerate(batches):
            if batch.update is None:
                self.groups.setdefault((batch.source, batch.window), []).append(i)
        self.merged = [Batch(source, [c for i in members for c in batches[i].changes], window)
                       for (source, window), members in self.groups.items()]

    def claimed(self, replies: list[Any]) -> None:
        """Hand each request its part of its group's reply (1 = new, 0 = seen, per change)."""
        for members, reply in zip(self.groups.values(), replies, strict=True):
            offset = 0
            for i in members:
                changes = self.batches[i].changes
                if isinstance(reply, Exception):
                    self.results[i] = StateError(f"writing state: {reply}")
                    continue
                applied = [bool(x) for x in reply[offset:offset + len(changes)]]
                offset += len(changes)
                self.results[i] = Outcome(applied, tally(changes, applied))

    def done(self) -> list[Outcome | Exception]:
        return [r if r is not None else StateError("not written") for r in self.results]


def _record_key(batch: Batch) -> str:
    assert batch.update is not None
    return f"cachewatch:{{{batch.source}}}:record:{batch.update.key}"


def _decoded(stored: dict[Any, Any]) -> Counts:
    return {decode(field): float(value) for field, value in stored.items()}


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
