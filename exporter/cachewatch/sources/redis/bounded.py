"""A Redis reply parser with a ceiling on bytes and time per reply.

redis-py reads whatever a server sends: a ``$524288000`` bulk string is buffered whole, a line
without its CRLF is read until memory runs out, and each ``recv`` has the socket timeout, so a
server trickling bytes holds a worker for as long as it likes. A configured Redis does not do
that, but ``/probe`` connects to addresses named in a query string, and whatever answers there
must not be able to grow the exporter's memory or hold its threads. This parser refuses a reply
over ``max_bytes`` (declared or received) and one that takes longer than the socket timeout in
total; the connection is then dropped by redis-py and the read reports ``reason="protocol"``
or ``"timeout"``.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from redis._parsers.resp2 import _RESP2Parser
from redis._parsers.socket import SocketBuffer
from redis.exceptions import InvalidResponse
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.utils import SENTINEL


class ReplyTooLarge(InvalidResponse):
    """A reply over ``redis.max_reply_bytes``: not what a Redis server sends to INFO or PING."""


class _BoundedBuffer(SocketBuffer):
    """A socket buffer that stops at ``limit`` buffered bytes and at a per-reply deadline."""

    def __init__(self, sock: Any, read_size: int, timeout: float | None, limit: int) -> None:
        super().__init__(sock, read_size, timeout)
        self.limit = limit
        self.deadline: float | None = None

    def start_reply(self) -> None:
        """A new reply begins: it has the socket timeout in total, not per ``recv``."""
        self.deadline = time.monotonic() + self.socket_timeout if self.socket_timeout else None

    def _buffered(self) -> int:
        with self._buffer.getbuffer() as view:
            return view.nbytes

    def _check(self, more: int = 0) -> float | object:
        """Raise if the reply is too large or too late; the timeout for the next ``recv``."""
        if self._buffered() + more > self.limit:
            raise ReplyTooLarge(f"reply over {self.limit} bytes (redis.max_reply_bytes)")
        if self.deadline is None:
            return SENTINEL
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RedisTimeoutError("reply not complete within the timeout")
        return min(left, self.socket_timeout or left)

    def _read_from_socket(self, length: int | None = None, timeout: Any = SENTINEL,
                          raise_on_timeout: bool | None = True) -> bool:
        if timeout is not SENTINEL:  # can_read(): a poll with its own timeout, no data needed
            return super()._read_from_socket(length, timeout, raise_on_timeout)
        # One recv at a time (length=None), so the size and the deadline are checked between.
        missing = length or 0
        while True:
            before = self._buffered()
            step_timeout = self._check(missing)
            if not super()._read_from_socket(None, step_timeout, raise_on_timeout):
                return False
            missing -= self._buffered() - before
            if missing <= 0:
                return True

    def read(self, length: int, timeout: Any = SENTINEL) -> bytes:
        if length > self.limit:  # a declared bulk length: refused before a byte of it is read
            raise ReplyTooLarge(f"reply declares {length} bytes, over {self.limit} "
                                "(redis.max_reply_bytes)")
        return super().read(length, timeout)


class _BoundedParser(_RESP2Parser):
    """RESP2 (the protocol cachewatch speaks) on a bounded buffer."""

    max_bytes = 1 << 20

    def on_connect(self, connection: Any) -> None:
        super().on_connect(connection)
        self._buffer = _BoundedBuffer(self._sock, self.socket_read_size,
                                      connection.socket_timeout, self.max_bytes)

    def read_response(self, disable_decoding: bool = False, timeout: Any = SENTINEL) -> Any:
        if self._buffer is not None:
            self._buffer.start_reply()
        return super().read_response(disable_decoding=disable_decoding, timeout=timeout)


@cache
def bounded_parser(max_bytes: int) -> type[_RESP2Parser]:
    """The parser class for ``redis.Redis(parser_class=...)`` with this ceiling (redis-py
    makes the parser itself, so the limit travels as a class attribute)."""
    return type(f"BoundedParser{max_bytes}", (_BoundedParser,), {"max_bytes": max_bytes})
