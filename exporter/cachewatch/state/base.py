"""What every state store is given and answers: batches of counter changes, de-duplicated.

A receiver turns one request into one ``Batch``: a ``Change`` per event (the counter increments
it makes, and the id it is de-duplicated on, if any), and for pushed cumulative counters an
``Update`` of one stored record (a pushing instance's last values). A store applies a batch whole
or not at all and says, per change, whether it was new. Only then is the request acknowledged.

Counter keys are tuples ``(series name, *label values)``; stores keep them as compact JSON.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

Key = tuple[str, ...]
Counts = dict[Key, float]


class StateError(Exception):
    """The store could not take or give state now (down, slow, full): answer 503, retry later."""


class StateTimeout(StateError):
    """The store did not commit within ``state.timeout`` (it may still do so later)."""


class NotLoaded(StateError):
    """A source's counts could not be read from the store yet: its writes wait for that."""


class StateInUse(StateError):
    """Another process holds this state file: each replica needs its own, or shared redis://."""


@dataclass(slots=True)
class Change:
    """One event's counter increments; ``once`` is its de-duplication id (``None``: always new).

    ``if_seen`` is counted instead when ``once`` was already seen (the duplicates counter).
    """

    counts: Counts
    once: bytes | None = None
    if_seen: Counts | None = None


@dataclass(slots=True)
class Update:
    """Read-modify-write of one stored JSON record, in the same transaction as the counters.

    ``apply(old)`` gets the stored record (``None`` if never stored) and returns the record to
    store, the counter increments and a value handed back to the caller. It may run more than
    once (optimistic concurrency on Redis), so it must not change anything itself.
    """

    key: str
    apply: Callable[[Any], tuple[Any, Counts, Any]]
    keep_for: float = 7 * 86400  # a record not updated for this long may be forgotten
    # Records of the source kept at most, the least lately updated forgotten first (a flood
    # of names must not fill the store for ``keep_for``); memory and SQLite stores trim.
    keep_at_most: int = 100_000


@dataclass(slots=True)
class Batch:
    """Everything one request changes in one source's state, applied whole or not at all."""

    source: str
    changes: list[Change]
    window: int = 100_000  # de-duplication ids remembered for this source
    update: Update | None = None


@dataclass(slots=True)
class Outcome:
    """What a committed batch did: which changes were new, the counts added, the update's value."""

    applied: list[bool]
    counts: Counts = field(default_factory=dict)
    value: Any = None


def tally(changes: Iterable[Change], applied: Iterable[bool]) -> Counts:
    """The increments of a batch once the store has said which of its changes were new."""
    total: Counts = {}
    for change, new in zip(changes, applied, strict=True):
        counts = change.counts if new else change.if_seen
        if counts:
            for key, delta in counts.items():
                total[key] = total.get(key, 0.0) + delta
    return total


def encode(key: Key) -> str:
    """A counter key as stored: compact JSON, so any label value round-trips."""
    return json.dumps(key, separators=(",", ":"), ensure_ascii=False)


_ENCODED: dict[Key, str] = {}


def encoded(key: Key) -> str:
    """``encode`` remembered: the same few hundred series are written again and again."""
    text = _ENCODED.get(key)
    if text is None:
        if len(_ENCODED) >= 50_000:
            _ENCODED.clear()
        text = _ENCODED[key] = encode(key)
    return text


def decode(stored: str | bytes) -> Key:
    return tuple(json.loads(stored))


Result = Outcome | Exception | None  # what ``Store.write_now`` answers for one batch


class LoopGroup:
    """The batches that reach a store in one turn of the event loop, committed together.

    The first waits one turn; every batch that arrives meanwhile (the requests whose bodies
    were read in that turn) joins it; then one ``commit`` of them all, and each caller gets
    its own result. With many senders, requests share a commit (SQLite) or a script call
    (Redis) instead of paying one each. When nothing else is ready to run on the loop (one
    sender), nobody could join: the batch is committed at once, without the turn (an extra
    poll of the selector and a task wake-up per request).
    """

    def __init__(self) -> None:
        self._gathering: list[tuple[Batch, asyncio.Future[Result] | None]] | None = None

    async def join(self, batch: Batch,
                   commit: Callable[[list[Batch]], Awaitable[list[Result]]]) -> Result:
        """``batch``'s result once the group holding it is committed (``None``: not on the
        loop, the writer thread takes it)."""
        loop = asyncio.get_running_loop()
        if self._gathering is not None:  # a commit is being gathered this turn: join it
            joined: asyncio.Future[Result] = loop.create_future()
            self._gathering.append((batch, joined))
            return await joined
        if _alone(loop):
            return (await commit([batch]))[0]
        group: list[tuple[Batch, asyncio.Future[Result] | None]] = [(batch, None)]
        self._gathering = group
        try:
            await asyncio.sleep(0)  # the requests read in this turn run up to here
        except BaseException:  # cancelled before committing: the others go to the writer
            _hand_over(group[1:], [None] * (len(group) - 1))
            raise
        finally:
            self._gathering = None
        try:
            results = await commit([member for member, _ in group])
        except BaseException:  # cancelled while committing: it may or may not have landed
            _hand_over(group[1:], [StateError("commit interrupted")] * (len(group) - 1))
            raise
        _hand_over(group[1:], results[1:])
        return results[0]


def _alone(loop: asyncio.AbstractEventLoop) -> bool:
    """Nothing but the running task will run before the loop next polls for I/O: no other
    request can reach the store in this turn. Read from asyncio's queue of ready callbacks (a
    private attribute, stable since Python 3.4); a loop without it (uvloop) is never alone."""
    ready = getattr(loop, "_ready", None)
    return ready is not None and not ready


def _hand_over(joined: list[tuple[Batch, asyncio.Future[Result] | None]],
               results: list[Result]) -> None:
    """Each joined batch's result to the request awaiting it (unless it went away)."""
    for (_, future), result in zip(joined, results, strict=True):
        if future is not None and not future.done():
            future.set_result(result)


def merged(batches: list[Batch]) -> list[tuple[Batch, list[int]]]:
    """The plain claims (no update) of each source and window as one batch each, with the
    positions of the batches it holds, in order; ``split`` gives each its own outcome."""
    if len(batches) == 1 and batches[0].update is None:  # one request alone: itself
        return [(batches[0], [0])]
    groups: dict[tuple[str, int], list[int]] = {}
    for index, batch in enumerate(batches):
        if batch.update is None:
            groups.setdefault((batch.source, batch.window), []).append(index)
    return [(Batch(source, [change for i in members for change in batches[i].changes], window),
             members) for (source, window), members in groups.items()]


def split(batches: list[Batch], members: list[int], applied: list[bool]
          ) -> Iterable[tuple[int, Outcome]]:
    """The outcome of each batch of a merged one, from which of its changes were new."""
    at = 0
    for index in members:
        changes = batches[index].changes
        mine = applied[at:at + len(changes)]
        at += len(changes)
        yield index, Outcome(mine, tally(changes, mine))


class Store(ABC):
    """One backend. ``write`` runs on the state's writer thread (never on the event loop),
    except for a store that is ``inline`` (memory), which is cheap enough to call in place."""

    backend: ClassVar[str]
    inline: ClassVar[bool] = False
    # Where the state is, for logs and the info metric (never with credentials).
    where: str = ""

    @abstractmethod
    def load(self, source: str) -> Counts:
        """Every stored counter of ``source`` (this replica's)."""

    @abstractmethod
    def write(self, batches: list[Batch]) -> list[Outcome | Exception]:
        """Apply each batch whole or not at all; one result per batch. Raises ``StateError``
        when nothing could be written."""

    async def write_now(self, batch: Batch) -> Outcome | Exception | None:
        """Commit ``batch`` on the event loop if that cannot block it (no disk sync, no lock
        to wait for; network I/O awaited like any socket; a store may hold it for a turn of
        the loop to commit it with others); ``None`` hands it to the writer thread, as every
        batch goes by default."""
        return None

    @abstractmethod
    def ping(self) -> None:
        """Raise ``StateError`` unless the store answers now."""

    def close(self) -> None:  # noqa: B027 - most stores hold something to release
        """Release connections and locks; nothing by default."""
