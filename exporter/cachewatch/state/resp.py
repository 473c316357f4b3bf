"""A minimal Redis connection on the event loop, for the one command on the webhook fast path.

Claiming an event (``EVALSHA`` of the claim script) is a round trip to Redis per request; the
general client costs several times that round trip in Python and needs a thread so as not to
block the loop. This speaks RESP2 over an asyncio transport instead: requests are written as
they come and replies matched in order (pipelined on one connection), so the loop waits for
Redis like for any other socket. Everything else (reading counts, app records, checks) uses the
general client on the writer thread.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import Any

from redis.connection import parse_url

from .base import StateError, StateTimeout


class RedisReplyError(Exception):
    """Redis answered with an error (``-ERR ...``, ``-NOSCRIPT ...``)."""


class Unreachable(StateError):
    """No connection could be made (or set up): the general client may still get through."""


def pack(*parts: bytes | str | int | float) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def parse(buffer: bytes, start: int = 0) -> tuple[Any, int] | None:
    """One reply from ``buffer[start:]``: ``(value, end)``, or ``None`` if it is not all there.
    Errors come back as ``RedisReplyError`` values, not raised."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return None
    kind, line = buffer[start:start + 1], buffer[start + 1:end]
    if kind == b"+":
        return line.decode(), end + 2
    if kind == b"-":
        return RedisReplyError(line.decode(errors="replace")), end + 2
    if kind == b":":
        return int(line), end + 2
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, end + 2
        if len(buffer) < end + 2 + size + 2:
            return None
        return buffer[end + 2:end + 2 + size], end + 2 + size + 2
    if kind == b"*":
        count, position, items = int(line), end + 2, []
        for _ in range(max(count, 0)):
            parsed = parse(buffer, position)
            if parsed is None:
                return None
            item, position = parsed
            items.append(item)
        return items, position
    raise StateError(f"not a Redis reply: {buffer[start:start + 40]!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        position = 0
        while self.waiting:
            parsed = parse(self.buffer, position)
            if parsed is None:
                break
            value, position = parsed
            future, _ = self.waiting.popleft()
            if not future.done():  # one that timed out still takes its reply off the line
                future.set_result(value)
        self.buffer = self.buffer[position:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = StateError(f"connection to Redis lost: {exc or 'closed'}")
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(self.lost)


class FastRedis:
    """One pipelined connection to the Redis of ``url``, made on first use, remade after a
    failure. A reply older than ``timeout`` means a hung server: the connection is dropped."""

    def __init__(self, url: str, timeout: float) -> None:
        options = parse_url(url)
        self.host = options.get("host", "127.0.0.1")
        self.port = int(options.get("port", 6379))
        self.db = int(options.get("db", 0) or 0)
        self.username = options.get("username")
        self.password = options.get("password")
        self.tls = _tls(options) if "connection_class" in options else None
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def call(self, *parts: bytes | str | int | float) -> Any:
        """Send one command and await its reply (raises ``StateError``)."""
        protocol = await self._connection()
        if protocol.waiting and time.monotonic() - protocol.waiting[0][1] > self.timeout:
            self.close()  # the oldest reply is overdue: the server hangs
            raise StateError(f"Redis did not answer within {self.timeout:g}s")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        protocol.waiting.append((future, time.monotonic()))
        assert protocol.transport is not None
        protocol.transport.write(pack(*parts))
        timer = loop.call_later(self.timeout, _expire, future, self.timeout)
        try:
            return await future
        finally:
            timer.cancel()

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
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(loop.create_connection(
                _Protocol, self.host, self.port, ssl=self.tls), self.timeout)
        except (TimeoutError, OSError) as exc:
            raise Unreachable(f"cannot connect to Redis {self.host}:{self.port}: {exc}") from exc
        setup = []
        if self.password is not None:
            setup.append(("AUTH", *([self.username] if self.username else []), self.password))
        if self.db:
            setup.append(("SELECT", self.db))
        for command in setup:
            future: asyncio.Future[Any] = loop.create_future()
            protocol.waiting.append((future, time.monotonic()))
            protocol.transport.write(pack(*command))
            try:
                reply = await asyncio.wait_for(future, self.timeout)
            except (TimeoutError, StateError) as exc:
                protocol.transport.close()
                raise Unreachable(f"Redis did not answer {command[0]}: {exc}") from exc
            if isinstance(reply, RedisReplyError):
                protocol.transport.close()
                raise Unreachable(f"Redis refused {command[0]}: {reply}")
        return protocol

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None


def _expire(future: asyncio.Future[Any], timeout: float) -> None:
    if not future.done():
        future.set_exception(StateTimeout(f"Redis took over {timeout:g}s"))


def _tls(options: dict[str, Any]) -> ssl.SSLContext:
    """The TLS the general client would use for a ``rediss://`` URL and its query options
    (``ssl_ca_certs``, ``ssl_certfile``/``ssl_keyfile``, ``ssl_cert_reqs``)."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    if str(options.get("ssl_cert_reqs", "required")).lower() in ("none", "cert_none"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif str(options.get("ssl_check_hostname", "true")).lower() in ("false", "0", "no"):
        context.check_hostname = False
    return context
