"""The Redis state store's two connections, both speaking ``cachewatch.resp``.

Claiming a webhook's events (``EVALSHA`` of the claim script) is a round trip to Redis per
request, so it runs on the event loop (``FastRedis``): requests are written as they come and
replies matched in order (pipelined on one connection), and the loop waits for Redis like for
any other socket. Everything else (reading counts, pushed instances' records under ``WATCH``,
checks, and claims when the loop's connection is down) runs on the state's writer thread, on a
blocking socket of its own (``BlockingRedis``): a transaction needs a connection nobody else
writes to.

Both open their connection the same way, from the ``state.url``: TLS for ``rediss://`` (query
options ``ssl_ca_certs``, ``ssl_certfile``/``ssl_keyfile``, ``ssl_cert_reqs``,
``ssl_check_hostname``), then ``AUTH`` and ``SELECT``.

Why not redis-py for the writer thread: measured on ``serve --state-url redis://`` after 2000
webhooks, 500 cache pushes and 200 builds, importing it cost 6.6 MB of RSS (60.0 against 53.3 MB)
for the handful of commands sent here, which take about 120 lines on the shared codec.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..resp import (
    Arg,
    Incomplete,
    ProtocolError,
    Replies,
    Reply,
    ReplyError,
    encode,
    encode_all,
    handshake,
    tls_context,
)
from .base import StateError, StateTimeout

TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs",
               "ssl_check_hostname")


# A command: its parts, or already encoded (RESP), as the claim script's call is (its fixed
# parts encoded once, not per request).
Command = tuple[Arg, ...] | bytes


def encoded(commands: tuple[Command, ...]) -> bytes:
    """``commands`` as one write (a pipeline)."""
    if len(commands) == 1 and isinstance(commands[0], bytes):
        return commands[0]
    return b"".join(command if isinstance(command, bytes) else encode(*command)
                    for command in commands)


class Unreachable(StateError):
    """No connection could be made (or set up): the other connection may still get through."""


@dataclass(frozen=True, slots=True)
class Address:
    """Where the state lives and how to get in: a parsed ``redis://`` or ``rediss://`` URL."""

    host: str
    port: int
    db: int
    username: str | None
    password: str | None
    tls: ssl.SSLContext | None

    @property
    def setup(self) -> list[tuple[Arg, ...]]:
        return handshake(self.username, self.password, self.db)


def parse_address(url: str) -> Address:
    """``redis[s]://[[user]:password@]host[:port][/db][?db=N&ssl_...=...]``; ``ValueError``
    for anything else, an unknown option included (it would be silently ignored)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("use redis://host:port/db or rediss://host:port/db")
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - {"db", *TLS_OPTIONS})
    if unknown:
        raise ValueError(f"unknown option {', '.join(unknown)}; known: db, "
                         f"{', '.join(TLS_OPTIONS)}")
    db = query.get("db") or unquote(parts.path.replace("/", "")) or "0"
    return Address(
        host=unquote(parts.hostname or "localhost"), port=parts.port or 6379, db=int(db),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=_tls(query) if parts.scheme == "rediss" else None)


def _tls(options: dict[str, str]) -> ssl.SSLContext:
    return tls_context(
        options.get("ssl_ca_certs"), options.get("ssl_certfile"), options.get("ssl_keyfile"),
        verify=options.get("ssl_cert_reqs", "required").lower() not in ("none", "cert_none"),
        check_hostname=options.get("ssl_check_hostname", "true").lower()
        not in ("false", "0", "no"))


def _refusal(command: tuple[Arg, ...], reply: Reply) -> Unreachable | None:
    """A set-up command that Redis refused (a wrong password, a database that does not exist)."""
    if isinstance(reply, ReplyError):
        return Unreachable(f"Redis refused {command[0]}: {reply}")
    return None


class BlockingRedis:
    """The writer thread's connection: commands pipelined on a blocking socket, one call at a
    time (a lock: the first read of a source's counts comes from the thread that starts it).
    Error replies are values; a failed call drops the connection (it is out of step)."""

    def __init__(self, address: Address, timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._replies = Replies()

    def call(self, *commands: Command) -> list[Reply]:
        """The replies to ``commands``, in order (raises ``StateError``)."""
        with self._lock:
            try:
                sock = self._connection()
                sock.sendall(encoded(commands))
                return [self._read(sock) for _ in commands]
            except (OSError, ProtocolError) as exc:
                self._drop()
                if isinstance(exc, TimeoutError):
                    raise StateError(f"Redis did not answer within {self.timeout:g}s") from exc
                raise StateError(f"Redis connection failed: {exc}") from exc

    def _read(self, sock: socket.socket) -> Reply:
        while True:
            try:
                return self._replies.pop()
            except Incomplete:
                pass
            data = sock.recv(1 << 16)
            if not data:
                raise ConnectionError("closed by Redis")
            self._replies.feed(data)

    def _connection(self) -> socket.socket:
        """The open connection, or a new one. An idle connection with something to read has
        been closed by the server (a restart, ``timeout``, ``CLIENT KILL``): replaced before
        anything is sent on it, so no command is ever sent twice."""
        if self._socket is not None and self._closed_by_server(self._socket):
            self._drop()
        if self._socket is None:
            self._socket = self._connect()
        return self._socket

    def _closed_by_server(self, sock: socket.socket) -> bool:
        if not select.select([sock], [], [], 0)[0]:
            return False
        sock.setblocking(False)
        try:
            sock.recv(1)  # end of stream, or bytes nobody asked for
        except (ssl.SSLWantReadError, BlockingIOError):
            return False  # TLS records only (a session ticket): no reply is waiting
        except OSError:
            pass
        finally:
            sock.settimeout(self.timeout)
        return True

    def _connect(self) -> socket.socket:
        address = self.address
        try:
            sock = socket.create_connection((address.host, address.port), self.timeout)
            if address.tls is not None:
                sock = address.tls.wrap_socket(sock, server_hostname=address.host)
        except OSError as exc:
            raise Unreachable(f"cannot connect to Redis {address.host}:{address.port}: "
                              f"{exc}") from exc
        self._socket, self._replies = sock, Replies()
        setup = address.setup
        if setup:
            sock.sendall(encode_all(setup))
            for command in setup:
                refusal = _refusal(command, self._read(sock))
                if refusal is not None:
                    self._drop()
                    raise refusal
        return sock

    def _drop(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket = None

    def close(self) -> None:
        with self._lock:
            self._drop()


class _Protocol(asyncio.Protocol):
    """Commands written as they come, replies matched in order. A reply not back within
    ``timeout`` fails its caller (``StateTimeout``): one watchdog timer per connection, armed
    for the oldest reply awaited, not a timer per command (that cost each request a timer
    made, pushed on the loop's heap and cancelled)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.replies = Replies()
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.lost: Exception | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, command: Command) -> asyncio.Future[Any]:
        """Write one command; the future gets its reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.waiting.append((future, time.monotonic()))
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout, self._expire)
        assert self.transport is not None
        self.transport.write(command if isinstance(command, bytes) else encode(*command))
        return future

    def _expire(self) -> None:
        """Fail each awaited reply older than ``timeout`` (it stays in line: its reply, if it
        ever comes, is still taken off); wake again when the next one falls due."""
        self._watchdog = None
        now = time.monotonic()
        for future, sent in self.waiting:
            if future.done():
                continue
            if sent + self.timeout > now:
                self._watchdog = asyncio.get_running_loop().call_later(
                    sent + self.timeout - now, self._expire)
                return
            future.set_exception(StateTimeout(f"Redis took over {self.timeout:g}s"))

    def data_received(self, data: bytes) -> None:
        self.replies.feed(data)
        while self.waiting:
            try:
                value = self.replies.pop()
            except Incomplete:
                break
            except ProtocolError as exc:  # not Redis: nothing more on this line can be trusted
                assert self.transport is not None
                self.transport.close()
                self.connection_lost(exc)
                return
            future, _ = self.waiting.popleft()
            if not future.done():  # one that timed out still takes its reply off the line
                future.set_result(value)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.lost or StateError(f"connection to Redis lost: {exc or 'closed'}")
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(self.lost)


class FastRedis:
    """One pipelined connection on the event loop, made on first use, remade after a failure.
    A reply older than ``timeout`` means a hung server: the connection is dropped."""

    def __init__(self, address: Address, timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def call(self, command: Command) -> Any:
        """Send one command and await its reply (raises ``StateError``)."""
        protocol = await self._connection()
        if protocol.waiting and time.monotonic() - protocol.waiting[0][1] > self.timeout:
            self.close()  # the oldest reply is overdue: the server hangs
            raise StateError(f"Redis did not answer within {self.timeout:g}s")
        return await protocol.send(command)

    async def _connection(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and protocol.lost is None:
            return protocol
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:  # one reconnect at a time, not one per request
            if self._protocol is None or self._protocol.lost is not None:
                self._protocol = await self._connect()
        return self._protocol

    async def _connect(self) -> _Protocol:
        address, loop = self.address, asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(loop.create_connection(
                lambda: _Protocol(self.timeout), address.host, address.port,
                ssl=address.tls), self.timeout)
        except (TimeoutError, OSError) as exc:
            raise Unreachable(f"cannot connect to Redis {address.host}:{address.port}: "
                              f"{exc}") from exc
        for command in address.setup:
            try:
                reply = await asyncio.wait_for(protocol.send(command), self.timeout)
            except (TimeoutError, StateError) as exc:
                reply = Unreachable(f"Redis did not answer {command[0]}: {exc}")
            refusal = reply if isinstance(reply, Unreachable) else _refusal(command, reply)
            if refusal is not None:
                assert protocol.transport is not None
                protocol.transport.close()
                raise refusal
        return protocol

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None

