"""Durable state: counters, de-duplication ids and pushing instances' last values.

``state.url`` picks the backend: ``sqlite:///relative`` or ``sqlite:////absolute`` (the default,
an embedded file), ``redis://host:port/db`` (shared by receiver replicas) or ``memory://``
(nothing kept). Sources get a ``Ledger`` from ``runtime.state`` and acknowledge a request only
after ``await ledger.record(...)`` returned: acknowledged means stored.
"""

from __future__ import annotations

import socket
from pathlib import Path

from .base import Batch, Change, Counts, Key, Outcome, StateError, StateInUse, Store, Update
from .ledger import Ledger, State
from .memory import MemoryStore
from .settings import StateSettings, default_url, parse_url

__all__ = ["Batch", "Change", "Counts", "Key", "Ledger", "MemoryStore", "Outcome", "State",
           "StateError", "StateInUse", "StateSettings", "Store", "Update", "default_url",
           "open_state", "parse_url"]

def open_state(settings: StateSettings, port: int) -> State:
    """The state for ``serve``: the store opened (a file locked, a client made), not yet read.

    Raises ``StateError`` when the store cannot be opened at all (a file in use, a directory
    that cannot be written); a Redis that is down is not that: it is retried while serving.
    """
    replica = settings.replica_id or f"{socket.gethostname()}:{port}"
    backend, where = parse_url(settings.url)
    store: Store
    if backend == "sqlite":
        from .sqlite import SqliteStore

        store = SqliteStore(Path(where), settings.sqlite_synchronous, settings.timeout)
    elif backend == "redis":
        from .redis import RedisStore

        store = RedisStore(where, replica, settings.timeout)
    else:
        store = MemoryStore()
    return State(store, replica, settings.timeout)
