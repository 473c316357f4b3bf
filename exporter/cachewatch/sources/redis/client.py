"""A small Redis client on asyncio streams: the commands a scrape sends (AUTH, INFO, PING,
LATENCY HISTOGRAM), pipelined, over TCP, TLS or a unix socket, with ACL users and password
files. RESP itself (encoding, parsing within ``redis.max_reply_bytes``, the AUTH set-up, TLS)
is ``cachewatch.resp``, shared with the Redis state store.

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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from ...collectors.stream_connection import StreamConnection
from ...resp import (
    MAX_LINE,
    Incomplete,
    ProtocolError,
    RedisError,
    Replies,
    Reply,
    ReplyError,
    ReplyTooLarge,
    encode_all,
    handshake,
    tls_context,
)
from .settings import DEFAULT_MAX_REPLY_BYTES, RedisTarget

T = TypeVar("T")
# A reader of one reply of a known shape straight from the bytes received: the value and where
# the reply ends, or None for anything else (not that shape, not all there yet), which the
# general parser then reads.
Scan = Callable[[bytes], "tuple[Any, int] | None"]
REASONS = ("timeout", "connection", "auth", "permission", "tls", "loading", "protocol", "other")
_AUTH_ERRORS = ("NOAUTH", "WRONGPASS", "ERR invalid password", "ERR invalid username",
                "ERR Client sent AUTH", "ERR AUTH", "ERR wrong number of arguments for 'auth'")


class CredentialsFileError(RedisError):
    """The password file could not be read when a connection needed it."""


class Connection(StreamConnection):
    """One connection; commands are pipelined: written at once, answered in order (a call
    that fails half-way closes it, ``StreamConnection``); the cache opens a fresh one."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES) -> None:
        super().__init__(reader, writer)
        self._replies = Replies(max_reply_bytes)
        # What this connection learnt about its server, once (the version, from INFO server):
        # a reconnect may reach an upgraded server, so it is not kept past the connection.
        self.version: tuple[int, ...] | None = None

    async def call(self, *commands: tuple[str | bytes, ...], raise_errors: bool = True,
                   last: Scan | None = None) -> list[Reply]:
        """Send ``commands`` in one write; their replies in order. The first error reply is
        raised once every reply has been read, so the connection stays usable; with
        ``raise_errors=False`` error replies are returned in their place instead. An error
        inside an array reply is a value of that array either way (none of the commands sent
        here answers one). ``last``: a reader of the last command's reply straight from the
        bytes received (see ``Scan``)."""
        async def read() -> list[Reply]:
            replies = [await self._reply() for _ in commands[:-1]]
            if commands:
                replies.append(await self._reply(last))
            return replies

        replies = await self.exchange(encode_all(commands), read)
        for reply in replies:
            if raise_errors and isinstance(reply, ReplyError):
                raise reply
        return replies

    async def _reply(self, scan: Scan | None = None) -> Reply:
        """The next reply, of at most ``max_reply_bytes`` (declared or received): whatever
        answers at an address, a bulk of 500 MB, a line that never ends or an endless array,
        cannot grow the exporter's memory past it. Time is the caller's deadline."""
        replies = self._replies
        while True:
            if scan is not None and (found := scan(replies.buffer)) is not None \
                    and found[1] <= replies.budget:
                replies.buffer = replies.buffer[found[1]:]
                return found[0]  # type: ignore[no-any-return]
            try:
                return replies.pop()
            except Incomplete:
                pass
            except ReplyTooLarge as exc:
                raise ReplyTooLarge(f"{exc} (redis.max_reply_bytes)") from None
            data = await self._reader.read(1 << 16)
            if not data:
                raise asyncio.IncompleteReadError(replies.buffer, None)
            replies.feed(data)

    @property
    def usable(self) -> bool:
        """Neither failed nor closed by the server (an idle ``timeout``, ``CLIENT KILL``), and
        no stray bytes left over from an earlier reply."""
        return super().usable and not self._replies.buffer


def _tls(target: RedisTarget) -> ssl.SSLContext:
    """Verify against the target's CA (or the system's); a client certificate for mutual TLS."""
    return tls_context(target.tls_ca_file, target.tls_cert_file, target.tls_key_file,
                       verify=not target.tls_insecure_skip_verify)


def _password(target: RedisTarget) -> str | None:
    """The target's password; a password file is read at each new connection, so a rotated
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
        return None
    return password


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
    try:  # no SELECT: INFO and PING are server-wide, and +info +ping is all a user needs
        setup = handshake(target.username, _password(target))
        if setup:
            await connection.call(*setup)
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
                   raise_errors: bool = True) -> list[Reply]:
        """``commands`` on a connection to ``target``. A reused connection that turns out to be
        closed (the server dropped it between scrapes) is replaced once; a new one is not."""
        return await self.using(
            target, lambda connection: connection.call(*commands, raise_errors=raise_errors))

    async def using(self, target: RedisTarget, work: Callable[[Connection], Awaitable[T]]) -> T:
        """``work`` on a connection to ``target`` (several calls that depend on each other),
        replaced once like ``call``'s when a reused connection turns out to be closed."""
        connection, fresh = await self._get(target)
        try:
            return await work(connection)
        except (ConnectionError, asyncio.IncompleteReadError):
            if fresh:
                raise
        return await work(await self.connection(target))

    def grow(self, size: int) -> None:
        """Keep at least ``size`` connections (a cluster target needs one per node)."""
        self._size = max(self._size, size)

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
            self._contexts[key] = _tls(target)
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
