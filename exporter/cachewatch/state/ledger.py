"""The state of one process: its store, the writer thread in front of it, and its health.

Acknowledged means stored: a receiver awaits ``Ledger.record``, which returns only once the
store has committed the batch; the in-memory mirror that ``/metrics`` reads is updated from
the committed result, never before. Store I/O that may wait runs on one writer thread, never
on the event loop (a store may take a commit on the loop when nothing can make it wait:
``Store.write_now``, where SQLite commits the batches of one turn of the loop together);
batches queued while a commit runs go into the next commit together (group commit), so many
senders share one transaction instead of waiting for one each.

A store that is down or slow fails the batch (``StateError``: the receiver answers 503 and the
sender retries), ``/metrics`` goes on answering from the mirror, and ``cachewatch_state_up``
says so. After a failed write a source's mirror is reloaded from the store before its next
write, so it never shows what the store does not hold. A store whose writes fail stays down
until a write (or a ping) succeeds: a read that works (a full disk still reads) does not bring
it back, so ``state_up`` holds steady at 0 and the log says so once a minute, not per request.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any

from ..logs import OncePerInterval
from ..metrics import contract
from ..metrics.cached import CachedFamilies
from ..metrics.contract import Families
from .base import (
    Batch,
    Change,
    Counts,
    Key,
    NotLoaded,
    Outcome,
    StateError,
    StateTimeout,
    Store,
    Update,
)

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from ..collectors.health import Health

log = logging.getLogger("cachewatch.state")

MAX_GROUP = 512  # batches in one commit at most
PING_EVERY = 2.0  # seconds of quiet after which the writer checks the store is still there
REFUSALS = ("timeout", "error", "overload", "loading")
OPS = ("read", "write", "ping")

Done = Callable[[Outcome | Exception], None]
_NOTHING: Any = object()  # the queue stayed empty until the next check was due


class Ledger:
    """One source's counters: what the store has committed, mirrored for ``/metrics``."""

    def __init__(self, state: State, source: str, window: int) -> None:
        self.state = state
        self.source = source
        self.window = window
        self.stale = True  # the mirror does not hold the store's counts (yet, or any more)
        self.epoch = 0  # bumped by every reload
        self.version = 0  # raised after every change to the mirror (``metrics.cached``)
        self._lock = threading.Lock()
        self._counts: Counts = {}

    def load(self) -> None:
        """Replace the mirror with the store's counts (raises ``StateError``)."""
        counts = self.state.store.load(self.source)
        with self._lock:
            self._counts = dict(counts)
            self.stale = False
            self.epoch += 1
            self.version += 1

    def apply(self, counts: Counts, epoch: int | None = None) -> bool:
        """Add what the store has just committed; not if the mirror was reloaded since
        ``epoch`` (the reload may already hold it): then ``False``."""
        with self._lock:
            if epoch is not None and epoch != self.epoch:
                return False
            mirror = self._counts
            for key, delta in counts.items():
                mirror[key] = mirror.get(key, 0.0) + delta
            self.version += 1
            return True

    def record(self, changes: list[Change], update: Update | None = None
               ) -> Coroutine[Any, Any, Outcome]:
        """Commit ``changes`` (and ``update``); returns once stored. Raises ``StateError``.
        The store's own coroutine, not one around it: a receiver awaits one per request."""
        return self.state.submit(Batch(self.source, changes, self.window, update))

    def record_later(self, changes: list[Change]) -> None:
        """Commit without waiting: for counts nobody is answered about (refusals)."""
        self.state.submit_nowait(Batch(self.source, changes, self.window))

    def items(self) -> list[tuple[Key, float]]:
        """A consistent copy of every counter."""
        with self._lock:
            return list(self._counts.items())


class State:
    """The store, its writer thread and its self-metrics; owned by the ``Runtime``."""

    def __init__(self, store: Store, replica: str, timeout: float = 2.0,
                 max_pending: int = 20_000) -> None:
        self.store = store
        self.replica = replica
        self.timeout = timeout
        self.max_pending = max_pending
        self.health: Health | None = None
        self._ledgers: dict[str, Ledger] = {}
        self._queue: queue.SimpleQueue[tuple[Batch, Done] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._up: bool | None = None
        self._down_by: str | None = None  # the operation whose failure took the store down
        self._log = OncePerInterval(log)
        self._errors = dict.fromkeys(OPS, 0)
        self._refused = dict.fromkeys(REFUSALS, 0)
        self._version = 0  # raised after every change collect() reads (``metrics.cached``)
        self._cached = CachedFamilies()
        self._thread: threading.Thread | None = None
        if not store.inline:
            self._thread = threading.Thread(target=self._run, name="cachewatch-state",
                                            daemon=True)
            self._thread.start()

    # --- for sources ---------------------------------------------------------------------------
    def ledger(self, source: str, window: int = 100_000) -> Ledger:
        """The ledger of ``source``, its counts loaded from the store when it answers now (the
        writer retries later if it does not; until then that source's writes are refused)."""
        ledger = self._ledgers[source] = Ledger(self, source, window)
        if self.health is not None:
            self.health.expect("state", (), (), gates_readiness=True)
        try:
            ledger.load()
        except StateError as exc:
            self._failed("read", exc)
        else:
            self._succeeded("read")
        return ledger

    async def submit(self, batch: Batch) -> Outcome:
        """Commit ``batch``; raise ``StateError`` if the store fails or takes over ``timeout``."""
        if self.store.inline:
            return self._inline(batch)
        ledger = self._ledgers[batch.source]
        if not ledger.stale and self._queue.empty():
            epoch = ledger.epoch
            result = await self.store.write_now(batch)  # on the loop, when it cannot block
            if result is not None:
                return self._settled(batch, result, epoch)
        if self._queue.qsize() >= self.max_pending:
            self._refuse("overload")
            raise StateError("too many writes waiting for the state store")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()

        def done(result: Outcome | Exception) -> None:
            loop.call_soon_threadsafe(_settle, future, result)

        timer = loop.call_later(self.timeout, _settle, future,
                                StateTimeout(f"the state store took over {self.timeout:g}s"))
        self._queue.put((batch, done))
        try:
            return await future
        except StateError as exc:
            self._refuse("timeout" if isinstance(exc, StateTimeout) else
                         "loading" if isinstance(exc, NotLoaded) else "error")
            raise
        finally:
            timer.cancel()

    def submit_nowait(self, batch: Batch) -> None:
        if self.store.inline:
            self._inline(batch)
        elif self._queue.qsize() < self.max_pending:
            self._queue.put((batch, _ignore))

    def _settled(self, batch: Batch, result: Outcome | Exception, epoch: int) -> Outcome:
        """A commit done on the loop: the same bookkeeping as the writer's. If the mirror was
        reloaded meanwhile, the reload may or may not hold this commit: read it back again."""
        if isinstance(result, Outcome):
            self._succeeded()
            ledger = self._ledgers[batch.source]
            if not ledger.apply(result.counts, epoch):
                ledger.stale = True
            return result
        if isinstance(result, StateError):
            self._failed("write", result)
            self._ledgers[batch.source].stale = True  # it may have landed: read it back
            self._refuse("timeout" if isinstance(result, StateTimeout) else "error")
        raise result

    def _inline(self, batch: Batch) -> Outcome:
        result = self.store.write([batch])[0]
        if isinstance(result, Exception):
            raise result
        self._ledgers[batch.source].apply(result.counts)
        return result

    # --- the writer thread --------------------------------------------------------------------
    def _run(self) -> None:
        due = time.monotonic() + PING_EVERY
        while True:
            try:
                first = self._queue.get(timeout=max(0.0, due - time.monotonic()))
            except queue.Empty:
                first = _NOTHING
            if time.monotonic() >= due:  # however busy: reload, check, checkpoint
                self._check()
                due = time.monotonic() + PING_EVERY
            if first is _NOTHING:
                continue
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            self._write(group)
            if stop:
                return

    def _write(self, group: list[tuple[Batch, Done]]) -> None:
        ready: list[tuple[Batch, Done]] = []
        for batch, done in group:
            ledger = self._ledgers[batch.source]
            if ledger.stale and not self._reload(ledger):
                done(NotLoaded(f"{batch.source} state not loaded: the store is unavailable"))
            else:
                ready.append((batch, done))
        if not ready:
            return
        try:
            results = self.store.write([batch for batch, _ in ready])
        except StateError as exc:
            self._failed("write", exc)
            results = [exc] * len(ready)
        else:
            self._succeeded()
            for result in results:
                if isinstance(result, StateError):
                    self._count_error("write")
        for (batch, done), result in zip(ready, results, strict=True):
            ledger = self._ledgers[batch.source]
            if isinstance(result, Outcome):
                ledger.apply(result.counts)
            elif isinstance(result, StateError):
                ledger.stale = True  # it may or may not have landed: read it back first
            else:
                log.error("state write failed", extra={"source": batch.source,
                                                       "error": repr(result)})
            done(result)

    def _reload(self, ledger: Ledger) -> bool:
        try:
            ledger.load()
        except StateError as exc:
            self._failed("read", exc)
            return False
        self._succeeded("read")
        return True

    def _check(self) -> None:
        """While quiet: reload what is stale, else ping, so ``state_up`` stays true to life."""
        stale = [ledger for ledger in self._ledgers.values() if ledger.stale]
        for ledger in stale:
            if not self._reload(ledger):
                return
        if not stale:
            try:
                self.store.ping()
            except StateError as exc:
                self._failed("ping", exc)
            else:
                self._succeeded("ping")

    # --- health -------------------------------------------------------------------------------
    def _succeeded(self, op: str = "write") -> None:
        if self._up:  # the common case, on every write: nothing changes
            return
        if op == "read" and self._down_by == "write":
            return  # reading proves nothing about writing (a full disk still reads)
        with self._lock:
            was, self._up, self._down_by = self._up, True, None
            self._version += 1
        if was is False:
            self._log.log(logging.INFO, "back", "state store is back",
                          state=self.store.where)
        if self.health is not None and self._ledgers and \
                not any(ledger.stale for ledger in self._ledgers.values()):
            self.health.completed("state")

    def _failed(self, op: str, exc: Exception) -> None:
        self._count_error(op)
        with self._lock:
            was, self._up = self._up, False
            if was is not False or self._down_by != "write":
                self._down_by = op
            self._version += 1
        if was is not False:
            self._log.log(logging.WARNING, "down", "state store unavailable: receivers answer "
                          "503 until it is back", state=self.store.where, op=op, error=str(exc))

    def _count_error(self, op: str) -> None:
        with self._lock:
            self._errors[op] += 1
            self._version += 1

    def _refuse(self, reason: str) -> None:
        with self._lock:
            self._refused[reason] += 1
            self._version += 1

    def collect(self) -> Iterator[Metric]:
        """``cachewatch_state_*``: where state lives, whether it answers, what failed; made
        again only after a change (``metrics.cached``)."""
        return iter(self._cached.get(self._version, self._families))

    def _families(self) -> Families:
        out = Families()
        with self._lock:
            up = self._up is not False
            errors, refused = dict(self._errors), dict(self._refused)
        out.add(contract.STATE_INFO, {"backend": self.store.backend, "replica": self.replica}, 1)
        out.add(contract.STATE_UP, {}, 1.0 if up else 0.0)
        for op, count in errors.items():
            out.add(contract.STATE_ERRORS, {"op": op}, count)
        for reason, count in refused.items():
            out.add(contract.STATE_REFUSED, {"reason": reason}, count)
        return out

    def close(self) -> None:
        """Commit what is queued, stop the writer, close the store."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=max(5.0, 2 * self.timeout))
        self.store.close()


def _settle(future: asyncio.Future[Any], result: Outcome | Exception) -> None:
    if future.done():
        return
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)


def _ignore(result: Outcome | Exception) -> None:
    """Nobody waits for this write; a failure is already counted."""

