"""Where a BuildKit daemon answers: ``unix:///path`` or ``tcp://host:port``, as buildctl spells it.

Pure parsing, no gRPC: settings validate addresses with it whether or not the optional
``cachewatch[buildkit]`` extra is installed.

The seam for more transports: an address has a ``kind``, and ``client.open_channel`` picks how to
reach the daemon by kind. Docker Engine 24+ serves the same Control and content services through
its ``/grpc`` endpoint (the HTTP upgrade buildx's ``docker`` driver uses); it would be one more
kind here (``docker://`` or the engine's ``unix://`` socket with a ``/grpc`` flag) and one more
branch there, with nothing above the channel changed. It is not offered: no engine that new runs
where this was built and tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

Kind = Literal["unix", "tcp"]


class AddressError(ValueError):
    """An address cachewatch cannot use; the message says what to write instead."""


@dataclass(frozen=True)
class Address:
    """A parsed daemon address."""

    kind: Kind
    where: str  # the socket path (unix) or host:port (tcp)

    @property
    def grpc_target(self) -> str:
        """The target string grpc's channels take for this address."""
        return f"unix:{self.where}" if self.kind == "unix" else self.where

    @property
    def label(self) -> str:
        """The default ``target`` label: the socket path or host:port."""
        return self.where


def parse_address(raw: str) -> Address:
    """``unix:///run/buildkit/buildkitd.sock`` or ``tcp://host:1234``; raises ``AddressError``."""
    text = raw.strip()
    if text.startswith("unix://"):
        path = text.removeprefix("unix://")
        if not path.startswith("/"):
            raise AddressError(f"{raw!r}: a unix socket needs an absolute path, like"
                               " unix:///run/buildkit/buildkitd.sock")
        return Address("unix", path)
    if text.startswith("tcp://"):
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            raise AddressError(f"{raw!r} is not a valid address; write tcp://host:port") from None
        if not parts.hostname or port is None or parts.path not in ("", "/"):
            raise AddressError(f"{raw!r}: write tcp://host:port (buildkitd --addr)")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return Address("tcp", f"{host}:{port}")
    scheme = text.split("://", 1)[0] if "://" in text else "none"
    hint = " (Docker Engine 24+'s /grpc endpoint is not supported yet)" if scheme in (
        "docker", "npipe") else ""
    raise AddressError(f"{raw!r} has scheme {scheme!r}; use unix:///path or tcp://host:port"
                       f"{hint}")
