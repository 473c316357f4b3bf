"""``memory://``: state kept in the process only; a restart forgets counts and ids."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from .base import Batch, Counts, Outcome, Store, tally


class RecentIds:
    """The last ``size`` ids seen: redeliveries inside that window are dropped."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[bytes, None] = OrderedDict()

    def seen(self, event_id: bytes) -> bool:
        """True if ``event_id`` was seen before; remembers it either way."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return True
        self._ids[event_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return False


class MemoryStore(Store):
    """Counts live in the ledgers' own memory; this keeps the ids and records."""

    backend = "memory"
    inline = True
    where = "memory"

    def __init__(self) -> None:
        self._ids: dict[str, RecentIds] = {}
        # source -> key -> record, the least lately updated first
        self._records: dict[str, dict[str, Any]] = {}

    def load(self, source: str) -> Counts:
        return {}

    def write(self, batches: list[Batch]) -> list[Outcome | Exception]:
        results: list[Outcome | Exception] = []
        for batch in batches:
            ids = self._ids.get(batch.source)
            if ids is None:
                ids = self._ids[batch.source] = RecentIds(batch.window)
            ids.size = batch.window
            changes = batch.changes
            if len(changes) == 1:  # one event (the common request): its increments, copied
                change = changes[0]
                new = change.once is None or not ids.seen(change.once)
                applied = [new]
                counts = dict((change.counts if new else change.if_seen) or {})
            else:
                applied = [c.once is None or not ids.seen(c.once) for c in changes]
                counts = tally(changes, applied)
            value = None
            if batch.update is not None:
                records = self._records.setdefault(batch.source, {})
                key = batch.update.key
                record, more, value = batch.update.apply(records.pop(key, None))
                records[key] = record
                while len(records) > batch.update.keep_at_most:
                    del records[next(iter(records))]
                for key, delta in more.items():
                    counts[key] = counts.get(key, 0.0) + delta
            results.append(Outcome(applied, counts, value))
        return results

    def ping(self) -> None:
        """Always answers."""
