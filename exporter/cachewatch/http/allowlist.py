"""``probe.allow``: which unlisted hosts ``/probe`` may read.

By default ``/probe`` reads only configured targets: an exporter that connects wherever a query
string points is a port scanner for anyone who can reach it. The allow list opens it to host
patterns (``*.cache.internal``; ``*`` matches any characters, dots included, and is the only
wildcard) and networks (``10.0.0.0/8``, ``fd00::/8``, a single address). A hostname is matched
against the host patterns only and is never resolved here, so a DNS answer cannot widen the
list; an IP address is matched against the networks.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from fnmatch import fnmatchcase

_HOST_PATTERN = re.compile(r"^[a-z0-9_*.-]+$")
# Patterns made of digits, dots and stars look like address ranges, but as host patterns they
# would also match names such as 10.0.0.1.attacker.example: a network must be written as a CIDR.
_ADDRESS_LIKE = re.compile(r"^[0-9.*]+$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AllowList:
    """Host patterns and networks; ``permits(host)`` says whether a host is on the list."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        """Raise ``ValueError`` naming the first entry that is neither a network nor a pattern."""
        self.entries = tuple(entries)
        self._networks: list[Network] = []
        self._patterns: list[str] = []
        for entry in self.entries:
            kind, value = parse_entry(entry)
            if kind == "network":
                self._networks.append(value)  # type: ignore[arg-type]
            else:
                self._patterns.append(value)  # type: ignore[arg-type]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def permits(self, host: str) -> bool:
        """Whether ``host`` (a name, or an IPv4/IPv6 address, brackets allowed) is listed."""
        name = host.strip().strip("[]").rstrip(".").lower()
        if not name:
            return False
        if "*" in self._patterns:
            return True
        try:
            address = ipaddress.ip_address(name.split("%", 1)[0])
        except ValueError:
            return any(fnmatchcase(name, pattern) for pattern in self._patterns)
        mapped = getattr(address, "ipv4_mapped", None)
        candidates = [address] + ([mapped] if mapped is not None else [])
        return any(a in network for a in candidates for network in self._networks
                   if a.version == network.version)

    def describe(self) -> str:
        """The list as users wrote it, for error messages."""
        return ", ".join(self.entries) or "empty"


def parse_entry(entry: str) -> tuple[str, Network | str]:
    """``("network", IPv4Network|IPv6Network)`` or ``("pattern", lowercase pattern)``."""
    text = entry.strip().lower()
    if not text:
        raise ValueError("an empty entry; write a host pattern like *.cache.internal or a "
                         "network like 10.0.0.0/8")
    try:
        return "network", ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    if "/" in text or ":" in text:
        raise ValueError(f"{entry!r} is not a network; write it like 10.0.0.0/8 or fd00::/8")
    if text != "*" and _ADDRESS_LIKE.match(text):
        raise ValueError(f"{entry!r} looks like an address range; write a network like "
                         "10.0.0.0/8 (a host pattern would also match names like "
                         "10.0.0.1.example.com)")
    if not _HOST_PATTERN.match(text):
        raise ValueError(f"{entry!r} is not a host pattern: use letters, digits, '-', '.' and "
                         "'*' (any characters), like *.cache.internal")
    return "pattern", text
