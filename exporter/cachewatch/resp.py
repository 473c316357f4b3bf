"""RESP2, the one codec of cachewatch's Redis clients: the Redis source's (``INFO``, ``PING`` and
``LATENCY HISTOGRAM`` on every scrape) and the Redis state store's (claims, counters, records).

Both clients write commands as arrays of bulk strings, read replies parsed from bytes already
received (never awaited element by element: a ``LATENCY HISTOGRAM`` reply has hundreds of
elements), and open a connection the same way (TLS, then ``AUTH`` and ``SELECT``). What differs
between them is how they wait (a scrape's deadline, the webhook path's pipelining, the state
writer thread's blocking socket), and that stays with each client.

Replies are plain values: ``bytes`` for simple and bulk strings alike (binary-safe, nothing
decoded on the scrape's path), ``int``, ``list``, ``None`` for a null bulk string or array, and a
``ReplyError`` *value* for an error, at the top level or inside an array (an ``EXEC`` or a script
may answer one among good replies): the reply is read whole either way, so the connection stays
in step, and the caller decides what an error means.
"""

from __future__ import annotations

import re
import ssl
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

# A reply line (a simple string, an error, a length) longer than this is not what Redis sends.
MAX_LINE = 64 << 10
UNBOUNDED = sys.maxsize  # no reply budget: a server the operator chose (the state store)

Arg = bytes | str | int | float


class RedisError(Exception):
    """A Redis call failed; the subclass says how. Messages never hold credentials."""


class ReplyError(RedisError):
    """The server answered with an error reply (``-ERR ...``, ``-NOPERM ...``, ``-NOSCRIPT``)."""


class ProtocolError(RedisError):
    """What came back is not RESP2, or is too large to be an answer to our commands."""


class ReplyTooLarge(ProtocolError):
    """A reply over the budget the client gave (the Redis source's ``redis.max_reply_bytes``)."""


class Incomplete(Exception):
    """The bytes received end inside a reply: read more and parse again."""


Reply = bytes | int | list["Reply"] | ReplyError | None


def encode(*parts: Arg) -> bytes:
    """One command as a RESP array of bulk strings (numbers written as their ``str``)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def encode_all(commands: Iterable[Sequence[Arg]]) -> bytes:
    """Several commands in one write (a pipeline): their replies come back in order."""
    return b"".join(encode(*command) for command in commands)


def parse(data: bytes, pos: int = 0, budget: int = UNBOUNDED) -> tuple[Reply, int]:
    """One reply starting at ``pos``: ``(value, end)``; raises ``Incomplete`` if it is not all
    there. A bulk string or array that *declares* more than ``budget`` bytes is refused before
    a byte of it is read (``ReplyTooLarge``)."""
    end = data.find(b"\r\n", pos)
    if end < 0:
        if len(data) - pos > MAX_LINE:
            raise ProtocolError(f"a reply line over {MAX_LINE} bytes")
        raise Incomplete
    kind, rest = data[pos], data[pos + 1:end]
    if kind == 36:  # $ bulk string
        size = int(rest)
        if size < 0:
            return None, end + 2
        if size > budget:
            raise ReplyTooLarge(f"reply declares {size} bytes, over {budget}")
        stop = end + 2 + size
        if len(data) < stop + 2:
            raise Incomplete
        return data[end + 2:stop], stop + 2
    if kind == 43:  # + simple string
        return rest, end + 2
    if kind == 45:  # - error
        return ReplyError(rest.decode("utf-8", "replace")), end + 2
    if kind == 58:  # : integer
        return int(rest), end + 2
    if kind == 42:  # * array
        count = int(rest)
        if count * 4 > budget:  # every element takes at least 4 bytes
            raise ReplyTooLarge(f"reply declares {count} elements, over {budget} bytes")
        if count < 0:
            return None, end + 2
        cursor = end + 2
        if count and (ints := _integers(data, cursor, count)) is not None:
            return ints
        items: list[Reply] = []
        for _ in range(count):
            item, cursor = parse(data, cursor, budget)
            items.append(item)
        return items, cursor
    raise ProtocolError(f"not a Redis reply (starts with {data[pos:pos + 16]!r})")


# A run of integer replies (``:123\r\n``): most of a LATENCY HISTOGRAM reply is such arrays.
_INTEGERS = re.compile(rb"(?::-?[0-9]+\r\n)+")


def _integers(data: bytes, pos: int, count: int) -> tuple[list[Reply], int] | None:
    """An array of ``count`` integers at ``pos`` in one match and one split, not an item at a
    time; ``None`` when its items are not all integers (or not all there yet)."""
    run = _INTEGERS.match(data, pos)
    if run is None:
        return None
    lines = run.group().split(b"\r\n", count)
    if len(lines) <= count:
        return None
    return [int(line[1:]) for line in lines[:count]], run.end() - len(lines[count])


class Replies:
    """What one connection received, taken off reply by reply in order, within a budget: a
    bulk of 500 MB, a line that never ends or an endless array cannot grow memory past it."""

    __slots__ = ("budget", "buffer")

    def __init__(self, budget: int = UNBOUNDED) -> None:
        self.budget = budget
        self.buffer = b""  # received, not parsed yet

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def pop(self) -> Reply:
        """The next whole reply; raises ``Incomplete`` (feed more) or ``ProtocolError``."""
        try:
            value, end = parse(self.buffer, 0, self.budget)
        except Incomplete:
            if len(self.buffer) > self.budget:
                raise ReplyTooLarge(f"reply over {self.budget} bytes") from None
            raise
        if end > self.budget:
            raise ReplyTooLarge(f"reply over {self.budget} bytes")
        self.buffer = self.buffer[end:]
        return value


def handshake(username: str | None, password: str | None, db: int = 0
              ) -> list[tuple[Arg, ...]]:
    """The commands that set a new connection up: ``AUTH`` (with an ACL user if one is named)
    when there is a password, ``SELECT`` for a database other than 0. RESP2 stays the
    protocol (no ``HELLO``): the least privilege a user needs stays that of its commands."""
    setup: list[tuple[Arg, ...]] = []
    if password is not None:
        setup.append(("AUTH", *([username] if username else []), password))
    if db:
        setup.append(("SELECT", db))
    return setup


def tls_context(ca_file: str | Path | None = None, cert_file: str | Path | None = None,
                key_file: str | Path | None = None, verify: bool = True,
                check_hostname: bool = True) -> ssl.SSLContext:
    """Verify against ``ca_file`` (or the system's CAs); a client certificate for mutual TLS;
    ``verify=False`` accepts any certificate (a test server, a self-signed one)."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert_file:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif not check_hostname:
        context.check_hostname = False
    return context
