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

import hashlib
import json
import logging
import time
from binascii import hexlify

from ..fields import redact
from ..resp import Reply, ReplyError
from .base import (
    Batch,
    Counts,
    Key,
    LoopGroup,
    Outcome,
    Result,
    StateError,
    Store,
    decode,
    encode,
    encoded,
    merged,
    split,
)
from .connections import BlockingRedis, Command, FastRedis, Unreachable, parse_address

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
CLAIM_SHA = hashlib.sha1(CLAIM.encode()).hexdigest()  # what EVALSHA names it by
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
            address = parse_address(url)
        except (ValueError, OSError) as exc:  # a malformed URL, a CA file that cannot be read
            raise StateError(f"state.url {self.where}: {exc}") from exc
        self._redis = BlockingRedis(address, timeout)
        self._fast = FastRedis(address, timeout)
        self._fast_off_until = 0.0
        self._group = LoopGroup()  # the claims of one turn of the loop, one script call
        self._claim_heads: dict[tuple[str, int], bytes] = {}  # see _claim_command
        self._warned = False

    def _counters(self, source: str) -> str:
        return f"cachewatch:{{{source}}}:counters:{self.replica}"

    def _call(self, doing: str, *commands: Command) -> list[Reply]:
        """The writer thread's commands, pipelined; a failure says what it was doing where."""
        try:
            return self._redis.call(*commands)
        except StateError as exc:
            raise StateError(f"{doing} {self.where}: {exc}") from exc

    def load(self, source: str) -> Counts:
        (stored,) = self._call("reading", ("HGETALL", self._counters(source)))
        if not isinstance(stored, list):
            raise StateError(f"reading {self.where}: {stored}")
        self._check_durability()
        return {decode(field): float(value)
                for field, value in zip(stored[::2], stored[1::2], strict=True)}

    def write(self, batches: list[Batch]) -> list[Outcome | Exception]:
        results: dict[int, Outcome | Exception] = {}
        # The claims of one source go in one script call, whatever the number of requests
        # they came from: one round trip and one atomic step for the whole group.
        groups = merged(batches)
        replies = self._claims([claims for claims, _ in groups]) if groups else []
        for (_, members), reply in zip(groups, replies, strict=True):
            if isinstance(reply, list):
                results.update(split(batches, members, [bool(x) for x in reply]))
            else:
                results.update((i, StateError(f"writing {self.where}: {reply}")) for i in members)
        for i, batch in enumerate(batches):
            if batch.update is not None:
                results[i] = self._update(batch)
        return [results.get(i, StateError("not written")) for i in range(len(batches))]

    def _claims(self, batches: list[Batch]) -> list[Reply]:
        """Run the claim script once per (merged) batch, in one round trip (EVALSHA; the
        script is loaded again, and only the refused claims sent again, after Redis restarted
        without it)."""
        commands = [_claim_command(self, batch) for batch in batches]
        replies = self._call("writing", *commands)
        missing = [i for i, reply in enumerate(replies) if _noscript(reply)]
        if missing:
            again = self._call("writing", ("SCRIPT", "LOAD", CLAIM),
                               *(commands[i] for i in missing))
            for i, reply in zip(missing, again[1:], strict=True):
                replies[i] = reply
        return replies

    async def write_now(self, batch: Batch) -> Result:
        """A plain claim (a webhook's events) goes from the loop straight to Redis, in one
        script call with the claims of every request that reaches here in the same turn of
        the loop (``LoopGroup``); an update (a pushed record: read, compute, write under
        WATCH) goes to the writer thread."""
        if batch.update is not None or time.monotonic() < self._fast_off_until:
            return None
        return await self._group.join(batch, self._claim_on_loop)

    async def _claim_on_loop(self, batches: list[Batch]) -> list[Result]:
        """One script call per source for ``batches`` (all plain claims), on the loop's
        connection; ``None`` for those not sent (the writer thread's connection tries)."""
        results: dict[int, Result] = {}
        for claims, members in merged(batches):
            command = _claim_command(self, claims)
            try:
                reply = await self._fast.call(command)
                if _noscript(reply):
                    await self._fast.call(("SCRIPT", "LOAD", CLAIM))  # Redis restarted without it
                    reply = await self._fast.call(command)
            except Unreachable as exc:
                # Nothing was sent: let the writer thread's connection try (it says whether
                # Redis is down).
                self._fast_off_until = time.monotonic() + FAST_OFF_FOR
                log.warning("redis state: the event loop's connection failed, writes go "
                            "through the writer thread for a while", extra={"error": str(exc)})
                break
            except StateError as exc:
                reply = exc
            if isinstance(reply, list):
                results.update(split(batches, members, [bool(flag) for flag in reply]))
            else:
                failed = reply if isinstance(reply, StateError) else StateError(
                    f"writing {self.where}: {reply}")
                results.update((index, failed) for index in members)
        return [results.get(index) for index in range(len(batches))]

    def _update(self, batch: Batch) -> Outcome:
        """Read-modify-write of one shared record plus this replica's counters, atomically."""
        update = batch.update
        assert update is not None
        assert not batch.changes
        key = f"cachewatch:{{{batch.source}}}:record:{update.key}"
        counters = self._counters(batch.source)
        for _ in range(WATCH_RETRIES):
            stored = self._watch(key)
            try:
                record, counts, value = update.apply(
                    json.loads(stored) if stored is not None else None)
            except BaseException:
                self._call("writing", ("UNWATCH",))
                raise
            replies = self._call(
                "writing", ("MULTI",),
                ("SET", key, json.dumps(record, separators=(",", ":")),
                 "EX", max(1, int(update.keep_for))),
                *(("HINCRBYFLOAT", counters, encode(field), repr(float(delta)))
                  for field, delta in counts.items()),
                ("EXPIRE", counters, COUNTERS_TTL), ("EXEC",))
            if replies[-1] is None:
                continue  # another replica changed the record meanwhile: read it again
            failed = _first_error(replies)
            if failed is not None:
                raise StateError(f"writing {self.where}: {failed}")
            return Outcome([], dict(counts), value)
        raise StateError(f"record {update.key!r} kept changing under {WATCH_RETRIES} tries")

    def _watch(self, key: str) -> bytes | None:
        """``key``'s value, watched: the ``EXEC`` that follows fails if it changes."""
        _, stored = self._call("writing", ("WATCH", key), ("GET", key))
        if isinstance(stored, ReplyError | list | int):
            self._call("writing", ("UNWATCH",))
            raise StateError(f"reading {self.where}: {key} holds no record ({stored})")
        return stored

    def ping(self) -> None:
        try:
            (reply,) = self._redis.call(("PING",))
        except StateError as exc:
            raise StateError(f"{self.where}: {exc}") from exc
        if isinstance(reply, ReplyError):  # LOADING, or a changed password
            raise StateError(f"{self.where}: {reply}")

    def _check_durability(self) -> None:
        """Say once if Redis would lose acknowledged state on its own crash (no AOF)."""
        if self._warned:
            return
        self._warned = True
        try:
            (reply,) = self._redis.call(("CONFIG", "GET", "appendonly"))
        except StateError:
            return
        if not isinstance(reply, list) or len(reply) != 2:
            return  # CONFIG may be renamed or denied: nothing to say
        if reply[1] != b"yes":
            log.warning("redis state has no append-only file: a crash of Redis loses what was"
                        " acknowledged since its last snapshot; run it with appendonly yes",
                        extra={"state": self.where})

    def close(self) -> None:
        self._fast.close()
        self._redis.close()


def _noscript(reply: Reply) -> bool:
    """Redis does not hold the claim script (it restarted, or its scripts were flushed)."""
    return isinstance(reply, ReplyError) and str(reply).startswith("NOSCRIPT")


def _first_error(replies: list[Reply]) -> ReplyError | None:
    """The first error among a transaction's replies and the replies ``EXEC`` returned."""
    for reply in replies:
        for value in reply if isinstance(reply, list) else [reply]:
            if isinstance(value, ReplyError):
                return value
    return None


def _claim_command(store: RedisStore, batch: Batch) -> bytes:
    """The ``EVALSHA`` of ``batch``'s claims, encoded (RESP): the keys and fixed arguments of
    a source, each counter's field and the recurring deltas are encoded once and reused (the
    same few hundred series are claimed again and again); per request only the ids are."""
    head = store._claim_heads.get((batch.source, batch.window))
    if head is None:
        head = store._claim_heads[(batch.source, batch.window)] = b"".join(map(_bulk, (
            "EVALSHA", CLAIM_SHA, 2, store._counters(batch.source),
            f"cachewatch:{{{batch.source}}}:seen", batch.window, COUNTERS_TTL)))
    parts = [b"", head]
    add = parts.append
    for change in batch.changes:
        once, seen = change.once, change.if_seen or {}
        add(b"$%d\r\n%s\r\n" % (2 * len(once), hexlify(once)) if once is not None
            else b"$0\r\n\r\n")
        add(_count(len(change.counts)))
        add(_count(len(seen)))
        for counts in (change.counts, seen):
            for key, delta in counts.items():
                add(_FIELDS.get(key) or _field(key))
                add(_DELTAS.get(delta) or _delta(delta))
    parts[0] = b"*%d\r\n" % (CLAIM_HEAD + len(parts) - 2)
    return b"".join(parts)


CLAIM_HEAD = 7  # EVALSHA, its SHA, the number of keys, two keys, the window, the TTL
_FIELDS: dict[Key, bytes] = {}
_DELTAS: dict[float, bytes] = {}


def _field(key: Key) -> bytes:
    """A counter's hash field (its key as stored, ``encoded``) as a RESP bulk string."""
    if len(_FIELDS) >= 50_000:
        _FIELDS.clear()
    field = _FIELDS[key] = _bulk(encoded(key))
    return field


def _delta(delta: float) -> bytes:
    """An increment as the script reads it (``repr`` of the float) in a bulk string."""
    if len(_DELTAS) >= 10_000:
        _DELTAS.clear()
    data = _DELTAS[delta] = _bulk(repr(float(delta)))
    return data


def _bulk(value: str | int) -> bytes:
    data = str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


_COUNTS = [_bulk(count) for count in range(64)]


def _count(count: int) -> bytes:
    return _COUNTS[count] if count < 64 else _bulk(count)
