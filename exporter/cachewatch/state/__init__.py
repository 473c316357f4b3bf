"""Durable state: counters, de-duplication ids and app instances' last values.

``state.url`` picks the backend: ``sqlite:///relative`` or ``sqlite:////absolute`` (the default,
an embedded file), ``redis://host:port/db`` (shared by receiver replicas) or ``memory://``
(nothing kept). Sources get a ``Ledger`` from ``runtime.state`` and acknowledge a request only
after ``await ledger.record(...)`` returned: acknowledged means stored.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from .base import Batch, Change, Counts, Key, Outcome, StateError, StateInUse, Store, Update
from .ledger import Ledger, State
from .memory import MemoryStore

if TYPE_CHECKING:
    from ..config import StateSettings

__all__ = ["Batch", "Change", "Counts", "Key", "Ledger", "MemoryStore", "Outcome", "State",
           "StateError", "StateInUse", "Store", "Update", "default_url", "open_state",
           "parse_url"]

SCHEMES = ("sqlite://", "redis://", "rediss://", "memory://")


def default_url() -> str:
    """``$XDG_STATE_HOME/cachewatch/state.db`` (``~/.local/state/...``): where a user's
    services keep state; the container image sets ``/var/lib/cachewatch/state.db``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return "sqlite:///" + str(Path(base).absolute() / "cachewatch" / "state.db")


def parse_url(url: str) -> tuple[str, str]:
    """``(backend, location)``; raises ``ValueError`` saying what to write instead."""
    if url.startswith("sqlite://"):
        rest = url.removeprefix("sqlite://")
        if not rest.startswith("/") or rest == "/":
            raise ValueError("write sqlite:///relative/path or sqlite:////absolute/path")
        return "sqlite", rest[1:]
    if url.startswith(("redis://", "rediss://")):
        return "redis", url
    if url == "memory://":
        return "memory", ""
    raise ValueError(f"unknown state URL; it starts with one of {', '.join(SCHEMES)}")


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
