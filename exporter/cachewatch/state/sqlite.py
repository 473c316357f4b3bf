"""``sqlite://``: an embedded file in WAL mode, one writer (this process, enforced by a lock).

Each group of batches is one transaction; a batch that fails inside it is rolled back to its
savepoint, so it leaves nothing behind while the others commit. With ``synchronous=NORMAL`` a
committed transaction is in the WAL file before the request is answered: it survives the
process being killed (``kill -9``, OOM), not a power loss or kernel crash, which may lose the
last transactions (never corrupt the file). ``synchronous=FULL`` syncs the WAL on every commit
and survives those too, at the cost of one fsync per commit.

A state file deleted or replaced while the exporter runs would take every later commit into a
file nobody can open again: acknowledged, then lost at the restart. Each commit and each ping
checks that the path still names the file that was opened (device and inode, one ``stat``);
when it does not, every write fails (503, ``state_up`` 0) with one error logged, until a restart
opens a new file. The writer's ping is a small write, so a full disk is seen while idle too.
"""

from __future__ import annotations

import fcntl
import functools
import itertools
import json
import logging
import os
import resource
import sqlite3
import threading
import time
from pathlib import Path
from typing import IO, Any

from .base import (
    Batch,
    Counts,
    LoopGroup,
    Outcome,
    Result,
    StateError,
    StateInUse,
    Store,
    decode,
    encoded,
    merged,
    split,
    tally,
)

log = logging.getLogger("cachewatch.state")

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    source TEXT NOT NULL, key TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (source, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS generations (
    source TEXT PRIMARY KEY, current INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    source TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (source, key)) WITHOUT ROWID;
"""
UPSERT = ("INSERT INTO counters (source, key, value) VALUES {rows} "
          "ON CONFLICT (source, key) DO UPDATE SET value = value + excluded.value")
CHUNK = 300  # ids or counter rows in one statement (SQLite allows 32766 parameters)
# Ids live in two generations per source (tables seen_<source>_0 and _1): new ids go into the
# current one, a lookup checks both, and once the current one holds a window of ids the older
# one is emptied (a truncation, not a scan) and becomes current. So a source remembers between
# one and two windows of ids, and forgetting costs next to nothing.
SEEN = """CREATE TABLE IF NOT EXISTS seen_{source}_{n} (
    id BLOB PRIMARY KEY) WITHOUT ROWID"""
PROBE = ("INSERT OR REPLACE INTO generations VALUES ('_probe', 0)")  # a write the ping makes
BUSY = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED: another process holds the file
SLOW_ON_LOOP = 0.02  # a commit on the event loop slower than this moves commits off it ...
OFF_LOOP_FOR = 30.0  # ... for this long


class SqliteStore(Store):
    """State in one SQLite file, owned by this process while it runs.

    A commit in WAL mode with ``synchronous=NORMAL`` appends a few pages to the WAL file and
    never syncs, so it is taken on the event loop when nothing else holds the file
    (``write_now``): no thread hand-off for each request, and the requests of one turn of the
    loop share one commit (at 16 senders the commit, not the statements, was most of the
    cost). Anything that may wait goes to the
    writer thread instead: the file locked by another process, the writer busy, a
    ``synchronous=FULL`` commit (an fsync each), and, for a while, everything after a commit on
    the loop that was slow (a disk that stalls). Checkpoints, which sync, run on the writer
    thread on a connection of their own (``ping``).
    """

    backend = "sqlite"

    def __init__(self, path: Path, synchronous: str = "normal", timeout: float = 2.0) -> None:
        self.path = path
        self.where = str(path)
        self._mutex = threading.Lock()  # one commit at a time, on the loop or the writer
        self._on_loop = synchronous != "full"
        self._off_loop_until = 0.0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._owner = _lock(path)
            # The writer's connection waits for a busy file; the loop's never does.
            self._db = self._connect(synchronous, timeout)
            self._db.executescript(SCHEMA)
            self._db.execute("DELETE FROM records WHERE expires < ?", (time.time(),))
            self._fast = self._connect(synchronous, 0.0)
            # Checkpoints (they sync) on a connection of their own: in WAL mode a checkpoint
            # runs beside commits, so a slow fsync never holds up a request.
            self._checkpoints = self._connect(synchronous, timeout)
            self._identity = _identity(path)
        except StateInUse:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open state file {path}: {exc}") from exc
        self._ids: dict[str, _Generations] = {}
        self._gone: str | None = None  # why the file can no longer be written
        self._keep: dict[str, int] = {}  # records kept per source at most (``Update``)
        self._group = LoopGroup()  # the batches of one turn of the loop, one commit

    def _check_file(self) -> None:
        """Raise ``StateError`` once the path no longer names the file that was opened."""
        if self._gone is None:
            try:
                same = _identity(self.path) == self._identity
            except OSError:
                same = False
            if same:
                return
            self._gone = (f"state file {self.path} was deleted or replaced while running: "
                          "writes are refused (anything written would be lost at the restart);"
                          " restart cachewatch to start a new file")
            log.error(self._gone, extra={"state": self.where})
        raise StateError(self._gone)

    def _connect(self, synchronous: str, timeout: float) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                             timeout=timeout)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints (they sync) run in ping()
        db.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
        return db

    def load(self, source: str) -> Counts:
        try:
            with self._mutex:
                rows = self._db.execute("SELECT key, value FROM counters WHERE source = ?",
                                        (source,)).fetchall()
        except sqlite3.Error as exc:
            raise StateError(f"reading {self.path}: {exc}") from exc
        return {decode(key): value for key, value in rows}

    def write(self, batches: list[Batch]) -> list[Outcome | Exception]:
        self._check_file()
        with self._mutex:
            return self._commit(self._db, batches)

    async def write_now(self, batch: Batch) -> Result:
        """Commit on the loop, in one transaction with every batch that reaches here in the
        same turn of the loop (``LoopGroup``); each request is answered after that commit."""
        if not self._on_loop or time.monotonic() < self._off_loop_until:
            return None
        return await self._group.join(batch, self._commit_on_loop)

    async def _commit_on_loop(self, batches: list[Batch]) -> list[Result]:
        """``batches`` in one transaction on the loop's connection; ``None`` for each when the
        commit must wait (the writer thread takes them)."""
        try:
            self._check_file()
        except StateError as exc:
            return [exc] * len(batches)
        started, waits = time.monotonic(), _waits()
        if not self._mutex.acquire(blocking=False):
            return [None] * len(batches)  # the writer has the file: queue behind it
        try:
            results: list[Result] = [*self._commit(self._fast, batches)]
        except StateError as exc:
            if getattr(exc.__cause__, "sqlite_errorcode", None) in BUSY:
                return [None] * len(batches)  # another process holds the file: writer waits
            return [exc] * len(batches)
        finally:
            self._mutex.release()
        took = time.monotonic() - started
        # Slow because the disk made it wait (the thread blocked), not because another process
        # had the CPU (on a busy machine a commit is often preempted): only then move off.
        if took > SLOW_ON_LOOP and _waits() > waits:
            self._off_loop_until = time.monotonic() + OFF_LOOP_FOR
            log.warning("a state commit took %.0f ms: commits move off the event loop for"
                        " %.0f s", took * 1000, OFF_LOOP_FOR, extra={"state": self.where})
        return results

    def _commit(self, db: sqlite3.Connection, batches: list[Batch]
                ) -> list[Outcome | Exception]:
        """One transaction for ``batches`` (the caller holds the mutex)."""
        sizes = {source: ids.size for source, ids in self._ids.items()}
        try:
            db.execute("BEGIN IMMEDIATE")
            if len(batches) == 1:  # the transaction is the batch: no savepoint needed
                try:
                    results: list[Outcome | Exception] = [self._one(db, batches[0])]
                except sqlite3.Error:
                    raise
                except Exception as exc:  # a bug, not the store: say so, keep nothing
                    db.execute("ROLLBACK")
                    self._restore(sizes)
                    return [exc]
            else:
                try:
                    results = self._several(db, batches)
                except sqlite3.Error:
                    raise
                except Exception:  # a bug in one batch: keep nothing, commit each alone
                    db.execute("ROLLBACK")
                    self._restore(sizes)
                    return [self._commit(db, [batch])[0] for batch in batches]
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._restore(sizes)
            raise StateError(f"writing {self.path}: {exc}") from exc
        return results

    def _restore(self, sizes: dict[str, int]) -> None:
        for source, ids in self._ids.items():
            ids.size = sizes.get(source, 0)

    def _several(self, db: sqlite3.Connection, batches: list[Batch]
                 ) -> list[Outcome | Exception]:
        """Several batches in one transaction. The plain claims of one source are merged into
        one batch (one lookup, one insert of ids, one counter statement for the whole group:
        at 16 senders the statements of each request cost as much as the commit they shared),
        each batch then told its own outcome, in order (an id claimed by two is new for the
        first). A batch with an update runs alone under a savepoint."""
        results: dict[int, Outcome | Exception] = {}
        for index, batch in enumerate(batches):
            if batch.update is not None:
                results[index] = self._guarded(db, batch)
        for claims, members in merged(batches):
            results.update(split(batches, members, self._one(db, claims).applied))
        return [results[index] for index in range(len(batches))]

    def _guarded(self, db: sqlite3.Connection, batch: Batch) -> Outcome | Exception:
        """A batch with an update, one of several in a transaction: a failure rolls back this
        batch only (an update runs code that can fail short of the store)."""
        db.execute("SAVEPOINT batch")
        try:
            result: Outcome | Exception = self._one(db, batch)
        except sqlite3.Error:
            raise
        except Exception as exc:
            db.execute("ROLLBACK TO batch")
            result = exc
        db.execute("RELEASE batch")
        return result

    def _one(self, db: sqlite3.Connection, batch: Batch) -> Outcome:
        """A batch in a few statements whatever its number of events: its ids looked up in
        both generations in one statement, stored in one, its counters added in one (per
        ``CHUNK`` ids or counters)."""
        claims = [c.once for c in batch.changes if c.once is not None]
        fresh = self._claim(db, batch, claims) if claims else set()
        applied = []
        for change in batch.changes:
            once = change.once
            if once is None:
                applied.append(True)
            else:  # the first of an id claimed twice in one batch is new, the second not
                applied.append(once in fresh)
                fresh.discard(once)
        counts = tally(batch.changes, applied)
        value = None
        if batch.update is not None:
            value = self._update(db, batch, counts)
        source, rows = batch.source, list(counts.items())
        for at in range(0, len(rows), CHUNK):
            chunk = rows[at:at + CHUNK]
            db.execute(_upsert(len(chunk)),
                       [field for key, delta in chunk for field in (source, encoded(key), delta)])
        return Outcome(applied, counts, value)

    def _claim(self, db: sqlite3.Connection, batch: Batch, claims: list[bytes]) -> set[bytes]:
        """The ids of ``claims`` seen in neither generation; all now stored in the current one.
        (A lookup then a plain insert: ``INSERT ... RETURNING`` measured half as fast.)"""
        ids = self._generations(db, batch)
        fresh: set[bytes] = set()
        for at in range(0, len(claims), CHUNK):
            chunk = claims[at:at + CHUNK]
            lookup, insert = ids.sql(len(chunk))
            seen = {row[0] for row in db.execute(lookup, chunk * 2)}
            db.execute(insert, chunk)
            fresh.update(once for once in chunk if once not in seen)
        ids.size += len(fresh)
        return fresh

    def _update(self, db: sqlite3.Connection, batch: Batch, counts: Counts) -> Any:
        update = batch.update
        assert update is not None
        row = db.execute("SELECT value FROM records WHERE source = ? AND key = ?",
                               (batch.source, update.key)).fetchone()
        record, more, value = update.apply(json.loads(row[0]) if row else None)
        db.execute(
            "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?)",
            (batch.source, update.key, json.dumps(record, separators=(",", ":")),
             time.time() + update.keep_for))
        self._keep[batch.source] = update.keep_at_most
        for key, delta in more.items():
            counts[key] = counts.get(key, 0.0) + delta
        return value

    def _generations(self, db: sqlite3.Connection, batch: Batch) -> _Generations:
        """The id tables of ``batch.source``, made and read on first use."""
        ids = self._ids.get(batch.source)
        if ids is None:
            if not batch.source.isidentifier():
                raise ValueError(f"source {batch.source!r} cannot name a table")
            for n in (0, 1):
                db.execute(SEEN.format(source=batch.source, n=n))
            row = db.execute("SELECT current FROM generations WHERE source = ?",
                             (batch.source,)).fetchone()
            ids = _Generations(batch.source, row[0] if row else 0)
            ids.size = db.execute(f"SELECT count(*) FROM {ids.table(ids.current)}").fetchone()[0]
            self._ids[batch.source] = ids
        ids.window = batch.window
        return ids

    def _rotate(self) -> None:
        """Empty the older generation of each source whose current one holds a window, and
        make it current: on the writer thread, a truncation, a few milliseconds."""
        for ids in list(self._ids.values()):
            if ids.size < ids.window:
                continue
            with self._mutex:
                older = 1 - ids.current
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute(f"DELETE FROM {ids.table(older)}")
                    self._db.execute("INSERT OR REPLACE INTO generations VALUES (?, ?)",
                                     (ids.source, older))
                    self._db.execute("COMMIT")
                except sqlite3.Error:
                    self._db.execute("ROLLBACK")
                    raise
                ids.switch(older)

    def ping(self) -> None:
        """Rotate the id generations, checkpoint the WAL into the file (this syncs, beside any
        commit); on the writer thread every few seconds: it proves the file answers and keeps
        the WAL and the ids small."""
        self._check_file()
        try:
            self._rotate()
            with self._mutex:
                self._db.execute(PROBE)
                self._forget()
            self._checkpoints.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: {exc}") from exc

    def _forget(self) -> None:
        """Drop expired records, and the least lately updated past a source's count limit
        (on the writer thread, with the ping; the caller holds the mutex)."""
        self._db.execute("DELETE FROM records WHERE expires < ?", (time.time(),))
        for source, keep in self._keep.items():
            self._db.execute(
                "DELETE FROM records WHERE source = ? AND key IN (SELECT key FROM records "
                "WHERE source = ? ORDER BY expires DESC LIMIT -1 OFFSET ?)",
                (source, source, keep))

    def close(self) -> None:
        try:
            with self._mutex:
                self._fast.close()
                self._checkpoints.close()
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.close()
        except sqlite3.Error:
            pass  # what is committed is in the WAL; the next open replays it
        finally:
            self._owner.close()


def _waits() -> int:
    """How often this thread has blocked (voluntary context switches: a disk, a lock). Being
    preempted by another process does not count; waiting for the GIL held by one of this
    process' own threads does. Where the system counts no thread's switches (only Linux has
    ``RUSAGE_THREAD``), every call differs: any slow commit moves off the loop."""
    if _THREAD_USAGE is None:
        return next(_UNCOUNTED)
    return resource.getrusage(_THREAD_USAGE).ru_nvcsw


_THREAD_USAGE = getattr(resource, "RUSAGE_THREAD", None)
_UNCOUNTED = itertools.count()  # where threads' switches are not counted: always "it waited"


@functools.cache
def _upsert(rows: int) -> str:
    """The counter statement for ``rows`` counters, made once per count (at most ``CHUNK``)."""
    return UPSERT.format(rows=",".join(["(?,?,?)"] * rows))


def _identity(path: Path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def _lock(path: Path) -> IO[str]:
    """Hold ``<file>.lock`` while running: two processes counting into one file would both
    export the same counts. The kernel drops the lock when the process dies, even by kill -9."""
    handle = path.with_name(path.name + ".lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise StateInUse(
            f"state file {path} is in use by {owner}: give each replica its own file"
            " (--state-url sqlite:////path), or share redis:// state between replicas") from None
    handle.truncate(0)
    handle.write(f"cachewatch pid {os.getpid()}\n")
    handle.flush()
    return handle


class _Generations:
    """One source's two id tables: which is current, how many ids it holds, the SQL."""

    def __init__(self, source: str, current: int) -> None:
        self.source = source
        self.size = 0
        self.window = 100_000
        self.switch(current)

    def table(self, n: int) -> str:
        return f"seen_{self.source}_{n}"

    def switch(self, current: int) -> None:
        self.current = current
        self.size = 0
        self._sql: dict[int, tuple[str, str]] = {}

    def sql(self, count: int) -> tuple[str, str]:
        """The lookup of ``count`` ids in both generations and their insert into the current
        one, one statement each; the text made once per count (the same few counts recur)."""
        sql = self._sql.get(count)
        if sql is None:
            marks, current, older = ",".join("?" * count), self.table(self.current), \
                self.table(1 - self.current)
            sql = self._sql[count] = (
                f"SELECT id FROM {current} WHERE id IN ({marks}) UNION ALL "
                f"SELECT id FROM {older} WHERE id IN ({marks})",
                f"INSERT OR IGNORE INTO {current} VALUES {','.join(['(?)'] * count)}")
        return sql
