"""Where state is kept (``state.url`` and its companions): the settings model the core's
configuration includes, with the URL rules it validates against, so the store and the settings
agree on what a state URL is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..fields import Seconds, flag

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



class StateSettings(BaseModel):
    """Where counters, de-duplication ids and pushing instances' last values are kept."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        default_factory=default_url,
        description="`sqlite:///relative/path`, `sqlite:////absolute/path`,"
        " `redis://host:port/db` (shared by replicas) or `memory://` (keeps nothing)",
        json_schema_extra=flag("--state-url", metavar="URL", default=(
            "SQLite in `$XDG_STATE_HOME/cachewatch/state.db` (`~/.local/state/...`);"
            " `/var/lib/cachewatch/state.db` in the image"), help=(
            "Where counts and de-duplication ids are kept: sqlite:///relative/path,"
            " sqlite:////absolute/path, redis://host:port/db or memory://")))
    replica_id: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="this replica's name in shared state; keep it stable across restarts",
        json_schema_extra=flag("--replica-id", metavar="ID", default="`<hostname>:<port>`"))
    timeout: Seconds = Field(
        default=2.0, gt=0, le=60,
        description="a write not committed within this gets `503` (the sender retries)",
        json_schema_extra=flag(default="2s"))
    sqlite_synchronous: Literal["normal", "full"] = Field(
        default="normal",
        description="`normal`: a commit survives the process being killed; `full`: also a"
        " power loss, at one fsync per commit")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        parse_url(url)
        return url
