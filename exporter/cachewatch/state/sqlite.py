"""``sqlite://``: an embedded file in WAL mode, one writer (this process, enforced by a lock).

Each group of batches is one transaction; a batch that fails inside it is rolled back to its
savepoint, so it leaves nothing behind while the others commit. With ``synchronous=NORMAL`` a
committed transaction is in the WAL file before the request is answered: it survives the
process being killed (``kill -9``, OOM), not a power loss or kernel crash, which may lose the
last transactions (never corrupt the file). ``synchronous=FULL`` syncs the WAL on every commit
and survives those too, at the cost of one fsync per commit.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import IO, Any

from .base import Batch, Counts, Outcome, StateError, StateInUse, Store, decode, encoded, tally

log = logging.getLogger("cachewatch.state")

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    source TEXT NOT NULL, key TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (source, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen (
    source TEXT NOT NULL, id BLOB NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (source, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    source TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (source, key)) WITHOUT ROWID;
"""
UPSERT = ("INSERT INTO counters (source, key, value) VALUES (?, ?, ?) "
          "ON CONFLICT (source, key) DO UPDATE SET value = value + excluded.value")
TRIM_SHARE = 10  # a window is trimmed once a tenth of it was added
BUSY = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED: another process holds the file
SLOW_ON_LOOP = 0.02  # a commit on the event loop slower than this moves commits off it ...
OFF_LOOP_FOR = 30.0  # ... for this long


class SqliteStore(Store):
    """State in one SQLite file, owned by this process while it runs.

    A commit in WAL mode with ``synchronous=NORMAL`` appends a few pages to the WAL file and
    never syncs, so it is taken on the event loop when nothing else holds the file
    (``write_now``): no thread hand-off for each request. Anything that may wait goes to the
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
        except StateInUse:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open state file {path}: {exc}") from exc
        self._seq: dict[str, int] = {}
        self._since_trim: dict[str, int] = {}
        self._windows: dict[str, int] = {}

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
        with self._mutex:
            return self._commit(self._db, batches)

    async def write_now(self, batch: Batch) -> Outcome | Exception | None:
        if not self._on_loop or time.monotonic() < self._off_loop_until:
            return None
        if not self._mutex.acquire(blocking=False):
            return None  # the writer has the file: queue behind it
        started = time.monotonic()
        try:
            result = self._commit(self._fast, [batch])[0]
        except StateError as exc:
            if getattr(exc.__cause__, "sqlite_errorcode", None) in BUSY:
                return None  # another process holds the file: the writer waits for it
            return exc
        finally:
            self._mutex.release()
        took = time.monotonic() - started
        if took > SLOW_ON_LOOP:
            self._off_loop_until = time.monotonic() + OFF_LOOP_FOR
            log.warning("a state commit took %.0f ms: commits move off the event loop for"
                        " %.0f s", took * 1000, OFF_LOOP_FOR, extra={"state": self.where})
        return result

    def _commit(self, db: sqlite3.Connection, batches: list[Batch]
                ) -> list[Outcome | Exception]:
        """One transaction for ``batches`` (the caller holds the mutex)."""
        seq = dict(self._seq)
        try:
            db.execute("BEGIN IMMEDIATE")
            if len(batches) == 1:  # the transaction is the batch: no savepoint needed
                try:
                    results: list[Outcome | Exception] = [self._one(db, batches[0])]
                except sqlite3.Error:
                    raise
                except Exception as exc:  # a bug, not the store: say so, keep nothing
                    db.execute("ROLLBACK")
                    self._seq = seq
                    return [exc]
            else:
                results = [self._guarded(db, batch) for batch in batches]
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._seq = seq
            raise StateError(f"writing {self.path}: {exc}") from exc
        self._count_ids(batches)
        return results

    def _guarded(self, db: sqlite3.Connection, batch: Batch) -> Outcome | Exception:
        """One batch of several in a transaction: a failure rolls back this batch only. Only an
        update runs code that can fail short of the store; plain claims need no savepoint."""
        if batch.update is None:
            return self._one(db, batch)
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
        source = batch.source
        applied = []
        for change in batch.changes:
            new = True
            if change.once is not None:
                seq = self._next(db, source)
                new = db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)",
                                 (source, change.once, seq)).rowcount == 1
                if new:
                    self._seq[source] = seq
            applied.append(new)
        counts = tally(batch.changes, applied)
        value = None
        if batch.update is not None:
            value = self._update(db, batch, counts)
        if counts:
            db.executemany(UPSERT, [(source, encoded(k), v) for k, v in counts.items()])
        return Outcome(applied, counts, value)

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
        for key, delta in more.items():
            counts[key] = counts.get(key, 0.0) + delta
        return value

    def _next(self, db: sqlite3.Connection, source: str) -> int:
        if source not in self._seq:
            row = db.execute("SELECT max(seq) FROM seen WHERE source = ?",
                                   (source,)).fetchone()
            self._seq[source] = row[0] or 0
        return self._seq[source] + 1

    def _count_ids(self, batches: list[Batch]) -> None:
        """Note the ids each source added; ``ping`` trims the windows they outgrew."""
        for batch in batches:
            self._windows[batch.source] = batch.window
            self._since_trim[batch.source] = self._since_trim.get(batch.source, 0) + sum(
                1 for c in batch.changes if c.once is not None)

    def _trim(self) -> None:
        """Forget ids past each source's window, once a tenth of it was added: one scan of
        the ids (no index on their age, which would cost every commit a page), on the writer
        thread, never on the event loop."""
        for source, added in list(self._since_trim.items()):
            window = self._windows[source]
            if added < max(100, window // TRIM_SHARE) or source not in self._seq:
                continue
            with self._mutex:
                self._db.execute("DELETE FROM seen WHERE source = ? AND seq <= ?",
                                 (source, self._seq[source] - window))
                self._since_trim[source] = 0

    def ping(self) -> None:
        """Trim the id windows, checkpoint the WAL into the file (this syncs, beside any
        commit); on the writer thread every few seconds: it proves the file answers and keeps
        the WAL and the ids small."""
        try:
            self._trim()
            self._checkpoints.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: {exc}") from exc

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
