"""One connection to a server that answers requests in order, shared by the sources' own
small asyncio clients.

What they have in common is the life of the socket, not the protocol: one exchange at a time
(the lock), a connection that failed or was cancelled half-way is closed and marked ``broken``
(an unread reply would answer the next request), and one retired from a full cache closes once
the exchange in progress has its reply. Each client reads its own protocol's reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class StreamConnection:
    """A reader/writer pair used for one request-reply exchange at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()
        self._retired = False
        self.broken = False

    async def exchange(self, request: bytes, read: Callable[[], Awaitable[T]]) -> T:
        """Write ``request`` and return ``read()``'s reply; on any failure (a cancelled
        deadline included) the connection is closed, never reused with a reply unread."""
        async with self._lock:
            try:
                self._writer.write(request)
                return await read()
            except BaseException:
                self.close()
                raise
            finally:
                if self._retired:
                    self.close()

    @property
    def usable(self) -> bool:
        """Neither failed nor closed by the server (an idle timeout, a restart)."""
        return not self.broken and not self._reader.at_eof()

    def close(self) -> None:
        """Close the socket (without waiting for the peer)."""
        self.broken = True
        self._writer.close()

    def retire(self) -> None:
        """Close now if idle, else once the exchange in progress has its reply."""
        self._retired = True
        if not self._lock.locked():
            self.close()
