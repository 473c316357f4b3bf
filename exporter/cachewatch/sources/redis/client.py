"""A small Redis client on asyncio streams: the three commands cachewatch sends (AUTH, INFO, PING),
pipelined, over TCP, TLS or a unix socket, with ACL users and password files.

Why not redis-py: the exporter sends three commands, and importing redis-py cost a tenth of a
sidecar's memory (about 6 MB RSS) while its pipeline machinery cost more per scrape than the
round trip itself. On asyncio the reads of every target wait side by side on the event loop,
under one deadline, with no worker thread between a scrape and its answer.

Only RESP2 is spoken (no ``HELLO``), and no ``CLIENT SETNAME`` or ``SELECT`` is sent: the least
privilege a user needs stays ``+info +ping`` (``INFO`` and ``PING`` are server-wide anyway).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import OrderedDict
from pathlib import Path
from typing import Any

from .settings import DEFAULT_MAX_REPLY_BYTES, RedisTarget

REASONS = ("timeout", "connection", "auth", "permission", "tls", "loading", "protocol", "other")
# A reply line (a simple string, an error) longer than this is not what Redis sends.
MAX_LINE = 64 << 10
_AUTH_ERRORS = ("NOAUTH", "WRONGPASS", "ERR invalid password", "ERR invalid username",
                "ERR Client sent AUTH", "ERR AUTH", "ERR wrong number of arguments for 'auth'")

Reply = bytes | int | list["Reply"] | None


class RedisError(Exception):
    """A Redis call failed; the subclass says how. Messages never hold credentials."""


class ReplyError(RedisError):
    """The server answered with an error reply (``-ERR ...``, ``-NOPERM ...``)."""


# What ``call(..., raise_errors=False)`` answers: an error reply stays in its place.
Answer = Reply | ReplyError


class ProtocolError(RedisError):
    """What came back is not RESP2, or is too large to be an answer to our commands."""


class ReplyTooLarge(ProtocolError):
    """A reply over ``redis.max_reply_bytes``: not what a Redis server sends to INFO or PING."""


class CredentialsFileError(RedisError):
    """The password file could not be read when a connection needed it."""


def _encode(command: tuple[str | bytes, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Incomplete(Exception):
    """The buffer ends inside a reply: read more and parse again."""


def _parse(data: bytes, pos: int, budget: int) -> tuple[Answer, int]:
    """One reply starting at ``pos``: ``(value, end)``. Parsed from bytes already read, not
    awaited element by element: a LATENCY HISTOGRAM reply has hundreds of elements."""
    end = data.find(b"\r\n", pos)
    if end < 0:
        if len(data) - pos > MAX_LINE:
            raise ProtocolError(f"a reply line over {MAX_LINE} bytes")
        raise _Incomplete
    kind, rest = data[pos], data[pos + 1:end]
    if kind == 36:  # $ bulk string
        size = int(rest)
        if size < 0:
            return None, end + 2
        if size > budget:  # refused before a byte of it is read
            raise ReplyTooLarge(f"reply declares {size} bytes, over {budget} "
                                "(redis.max_reply_bytes)")
        stop = end + 2 + size
        if len(data) < stop + 2:
            raise _Incomplete
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
            raise ReplyTooLarge(f"reply declares {count} elements, over {budget} bytes "
                                "(redis.max_reply_bytes)")
        items: list[Reply] = []
        cursor = end + 2
        for _ in range(max(count, 0)):
            item, cursor = _parse(data, cursor, budget)
            if isinstance(item, ReplyError):
                raise item
            items.append(item)
        return (items if count >= 0 else None), cursor
    raise ProtocolError(f"not a Redis reply (starts with {data[pos:pos + 16]!r})")


class Connection:
    """One connection; commands are pipelined: written at once, answered in order.

    A call that fails or is cancelled half-way leaves unread replies on the socket, so the
    connection is then closed and marked ``broken``; the cache opens a fresh one next time.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES) -> None:
        self._reader = reader
        self._writer = writer
        self._max_reply_bytes = max_reply_bytes
        self._buffer = b""  # received, not parsed yet
        self._lock = asyncio.Lock()
        self._retired = False
        self.broken = False

    async def call(self, *commands: tuple[str | bytes, ...], raise_errors: bool = True
                   ) -> list[Answer]:
        """Send ``commands`` in one write; their replies in order. The first error reply is
        raised once every reply has been read, so the connection stays usable; with
        ``raise_errors=False`` error replies are returned in their place instead."""
        async with self._lock:
            try:
                self._writer.write(b"".join(_encode(c) for c in commands))
                replies = [await self._reply() for _ in commands]
            except BaseException:
                self.close()
                raise
            finally:
                if self._retired:
                    self.close()
        for reply in replies:
            if raise_errors and isinstance(reply, ReplyError):
                raise reply
        return replies

    async def _reply(self) -> Answer:
        """The next reply, of at most ``max_reply_bytes`` (declared or received): whatever
        answers at an address, a bulk of 500 MB, a line that never ends or an endless array,
        cannot grow the exporter's memory past it. Time is the caller's deadline."""
        while True:
            try:
                value, end = _parse(self._buffer, 0, self._max_reply_bytes)
            except _Incomplete:
                if len(self._buffer) > self._max_reply_bytes:
                    raise ReplyTooLarge(f"reply over {self._max_reply_bytes} bytes "
                                        "(redis.max_reply_bytes)") from None
                data = await self._reader.read(1 << 16)
                if not data:
                    raise asyncio.IncompleteReadError(self._buffer, None) from None
                self._buffer += data
                continue
            if end > self._max_reply_bytes:
                raise ReplyTooLarge(f"reply over {self._max_reply_bytes} bytes "
                                    "(redis.max_reply_bytes)")
            self._buffer = self._buffer[end:]
            return value

    @property
    def usable(self) -> bool:
        """Neither failed nor closed by the server (an idle ``timeout``, ``CLIENT KILL``)."""
        return not self.broken and not self._reader.at_eof() and not self._buffer

    def close(self) -> None:
        """Close the socket (without waiting for the peer)."""
        self.broken = True
        self._writer.close()

    def retire(self) -> None:
        """Close now if idle, else once the call in progress has its replies."""
        self._retired = True
        if not self._lock.locked():
            self.close()


def tls_context(target: RedisTarget) -> ssl.SSLContext:
    """Verify against the target's CA (or the system's); a client certificate for mutual TLS."""
    context = ssl.create_default_context(
        cafile=str(target.tls_ca_file) if target.tls_ca_file else None)
    if target.tls_cert_file and target.tls_key_file:
        context.load_cert_chain(str(target.tls_cert_file), str(target.tls_key_file))
    if target.tls_insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _credentials(target: RedisTarget) -> tuple[str, ...]:
    """``AUTH`` arguments; a password file is read at each new connection, so a rotated
    password needs no restart."""
    if target.password_file is not None:
        try:
            password = Path(target.password_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise CredentialsFileError(f"cannot read password_file "
                                       f"{str(target.password_file)!r}: {exc.strerror}") from None
    elif target.password is not None:
        password = target.password.get_secret_value()
    else:
        return ()
    return (target.username, password) if target.username else (password,)


def _host_port(url: str) -> tuple[str, int]:
    """``redis://host:port[/db]`` (normalised by the settings) -> ``(host, port)``."""
    address = url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


async def connect(target: RedisTarget, context: ssl.SSLContext | None,
                  max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES) -> Connection:
    """Open and authenticate a connection; the caller bounds it with its deadline."""
    if target.url.startswith("unix://"):
        reader, writer = await asyncio.open_unix_connection(target.url[len("unix://"):],
                                                            limit=MAX_LINE)
    else:
        host, port = _host_port(target.url)
        reader, writer = await asyncio.open_connection(
            host, port, ssl=context, server_hostname=host if context else None, limit=MAX_LINE)
    connection = Connection(reader, writer, max_reply_bytes)
    try:
        credentials = _credentials(target)
        if credentials:
            await connection.call(("AUTH", *credentials))
    except BaseException:
        connection.close()
        raise
    return connection


def classify(exc: BaseException) -> tuple[str, str]:
    """``(reason, message)`` for a failed call. No message holds a password: commands (AUTH's
    arguments among them) are never part of one."""
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, CredentialsFileError):
        return "auth", message
    if isinstance(exc, ReplyError):
        text = str(exc)
        if text.startswith(_AUTH_ERRORS):
            return "auth", message
        if text.startswith("NOPERM"):  # an ACL user without +info or +ping
            return "permission", message
        if text.startswith("LOADING"):  # restarting and still loading its dataset
            return "loading", message
        return "protocol", message
    if isinstance(exc, TimeoutError):
        return "timeout", message
    if isinstance(exc, ssl.SSLError):
        return "tls", message
    if isinstance(exc, ConnectionError | OSError | asyncio.IncompleteReadError):
        return "connection", message
    if isinstance(exc, ProtocolError | ValueError | KeyError | asyncio.LimitOverrunError):
        return "protocol", message
    return "other", message


def _key(target: RedisTarget) -> tuple[Any, ...]:
    return (target.url, target.username,
            target.password.get_secret_value() if target.password else None,
            target.password_file, target.tls_ca_file, target.tls_cert_file, target.tls_key_file,
            target.tls_insecure_skip_verify)


class ClientCache:
    """One open connection per target (exact connection settings), bounded LRU.

    Connections belong to the event loop that opened them; a caller on another loop (a test
    collecting synchronously) gets its own, closed with ``close_loop``.
    """

    def __init__(self, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES, size: int = 128) -> None:
        self._max_reply_bytes = max_reply_bytes
        self._size = size
        self._connections: OrderedDict[tuple[Any, ...], Connection] = OrderedDict()
        self._contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._others: dict[asyncio.AbstractEventLoop, list[Connection]] = {}

    async def call(self, target: RedisTarget, *commands: tuple[str | bytes, ...],
                   raise_errors: bool = True) -> list[Answer]:
        """``commands`` on a connection to ``target``. A reused connection that turns out to be
        closed (the server dropped it between scrapes) is replaced once; a new one is not."""
        connection, fresh = await self._get(target)
        try:
            return await connection.call(*commands, raise_errors=raise_errors)
        except (ConnectionError, asyncio.IncompleteReadError):
            if fresh:
                raise
        return await (await self.connection(target)).call(*commands, raise_errors=raise_errors)

    async def connection(self, target: RedisTarget) -> Connection:
        """An open connection to ``target``, reused while it works."""
        return (await self._get(target))[0]

    async def _get(self, target: RedisTarget) -> tuple[Connection, bool]:
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop.is_closed():
            self._loop = loop
        key = _key(target)
        if loop is not self._loop:
            connection = await connect(target, self._context(key, target), self._max_reply_bytes)
            self._others.setdefault(loop, []).append(connection)
            return connection, True
        connection = self._connections.pop(key, None)
        fresh = connection is None or not connection.usable
        if fresh:
            if connection is not None:
                connection.close()
            connection = await connect(target, self._context(key, target), self._max_reply_bytes)
        self._connections[key] = connection
        while len(self._connections) > self._size:
            self._connections.popitem(last=False)[1].retire()
        return connection, fresh

    def _context(self, key: tuple[Any, ...], target: RedisTarget) -> ssl.SSLContext | None:
        if not target.tls:
            return None
        if key not in self._contexts:  # loading a CA bundle takes milliseconds: once per target
            self._contexts[key] = tls_context(target)
        return self._contexts[key]

    def close_loop(self) -> None:
        """Close the connections opened on the running loop when it is not the main one."""
        for connection in self._others.pop(asyncio.get_running_loop(), []):
            connection.close()

    def close(self) -> None:
        """Close every cached connection."""
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
