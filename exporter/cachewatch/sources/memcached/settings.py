"""The Memcached source's settings: targets, the deadline, the latency probe, the reply cap.

A target is ``[NAME=]HOST[:PORT]`` (port 11211 by default), ``[NAME=][IPv6]:PORT`` or
``[NAME=]unix:///path``. Memcached's text protocol has no passwords (its SASL is binary-protocol
only), so an address carrying credentials is refused rather than quietly stripped: a user who
wrote one expects it to be sent.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...fields import Seconds, flag, named_target, redact

DEFAULT_PORT = 11211
# `stats` of memcached 1.6 is about 3 KB (90 lines); this leaves a wide margin.
DEFAULT_MAX_REPLY_BYTES = 64 << 10


class TargetAddressError(ValueError):
    """A Memcached address that cannot be used; the message says why and what to write."""


def normalise_address(raw: str) -> str:
    """``host:port`` (port filled in, IPv6 in brackets) or ``unix:///path``.

    The normal form is both what is dialled and the default ``cache`` label, so ``h`` and
    ``h:11211`` are the same target.
    """
    text = raw.strip()
    if not text:
        raise TargetAddressError("the target is empty; write host:port")
    if text.startswith("unix://"):
        path = text[len("unix://"):]
        if not path.startswith("/"):
            raise TargetAddressError("a unix:// target needs an absolute socket path, like "
                                     "unix:///run/memcached.sock")
        return f"unix://{path}"
    if "://" in text:
        raise TargetAddressError(f"{redact(raw)!r}: write host:port or unix:///path "
                                 "(memcached has no URL scheme)")
    try:
        parts = urlsplit("//" + text)
        port = parts.port
    except ValueError:
        raise TargetAddressError(f"{redact(raw)!r} is not host:port") from None
    if parts.username or parts.password:
        raise TargetAddressError(
            "memcached's text protocol takes no credentials; remove user:password@ from "
            f"{redact(raw)!r}")
    if not parts.hostname or parts.path or parts.query or parts.fragment:
        raise TargetAddressError(f"{redact(raw)!r} is not host:port")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port or DEFAULT_PORT}"


class MemcachedTarget(BaseModel):
    """One memcached server to read."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(description="host:port, [IPv6]:port or unix:///path")
    name: str | None = Field(
        default=None, description="The `cache` label value; defaults to the address.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        """Allow a bare ``[NAME=]ADDRESS`` string wherever a target is expected (flags, env)."""
        return named_target(data, "address", "/:")

    @model_validator(mode="after")
    def _normalise(self) -> MemcachedTarget:
        self.address = normalise_address(self.address)
        if not self.name:
            self.name = self.address
        return self

    @property
    def label(self) -> str:
        """The ``cache`` and ``target`` label (the name, set at validation)."""
        return self.name or self.address


class MemcachedSettings(BaseModel):
    """The Memcached collector: targets, deadline and the active latency probe."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=False, description="turn the Memcached collector on or off")
    targets: list[MemcachedTarget] = Field(
        default_factory=lambda: [MemcachedTarget(address=f"127.0.0.1:{DEFAULT_PORT}")],
        description="memcached servers read on every scrape",
        json_schema_extra=flag(
            "--memcached-target", default=f"[127.0.0.1:{DEFAULT_PORT}]",
            metavar="[NAME=]HOST:PORT",
            help="Memcached to read, [NAME=]HOST:PORT or unix:///path (with"
            " --enable-collector memcached)"))
    timeout: Seconds = Field(
        default=2.0, gt=0, le=60,
        description='per-target deadline; slower targets report `up 0`, `reason="timeout"`',
        json_schema_extra=flag("--memcached-timeout", default="2s",
                               help="Per-target deadline, like 2s or 500ms"))
    probe_interval: Seconds = Field(
        default=1.0, ge=0, le=3600,
        description="time between latency probes (`version`, which reads no key) per target;"
        " `0` turns the probe off",
        json_schema_extra=flag("--memcached-probe-interval", default="1s",
                               help="Time between latency probes (version) per target; 0 turns"
                               " them off"))
    max_reply_bytes: int = Field(
        default=DEFAULT_MAX_REPLY_BYTES, ge=16 << 10, le=16 << 20,
        description="a reply larger than this ends the read (`reason=\"protocol\"`): a server, or "
        "anything answering at a probed address, cannot make the exporter buffer more; `stats` "
        "is about 3 KB")

    @model_validator(mode="after")
    def _unique_names(self) -> MemcachedSettings:
        seen: set[str] = set()
        for target in self.targets:
            if target.label in seen:
                raise ValueError(f"two targets are named {target.label!r}; give each a unique "
                                 "name")
            seen.add(target.label)
        return self
