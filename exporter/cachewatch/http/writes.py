"""An answer's status line and headers sent with its body, in one write.

uvicorn writes a response's head when the application sends ``http.response.start`` and its
body at ``http.response.body``: two ``send`` calls for every answer. On a small answer (a
webhook's ``{"accepted": 1, ...}``) each one costs more than everything the exporter does in
Python for the request, and the peer wakes twice. ``HeadWithBody`` stands in for the transport
of one request-response cycle: it holds the head and writes it with the first body bytes.
Nothing is held longer than that: the head goes out with the first body write (uvicorn writes
for every body message of an answer that is not to a ``HEAD`` request; those are not held) or
on ``close`` (an application that failed after starting its answer). The exporter's answers
are whole (no streaming), so a head is never held across a wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

JOIN_AT_MOST = 64 * 1024  # body bytes copied after the head at most; a larger body is sent alone


class HeadWithBody:
    """The transport of one cycle, as the cycle uses it: ``write``, ``close``, ``is_closing``.

    The first write after the answer started is its head (uvicorn writes it whole, in one
    call, and writes nothing else between starting the answer and its body); a ``100
    Continue`` written before the answer started passes straight through."""

    __slots__ = ("cycle", "head", "started", "transport")

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self.transport = transport
        self.cycle = cycle
        self.head: bytes | None = None
        self.started = False  # the head was seen (held, or written)

    def write(self, data: bytes) -> None:
        """Hold the head; write anything else, the held head first."""
        head = self.head
        if head is not None:
            self.head = None
            if len(data) > JOIN_AT_MOST:  # copying a large body costs more than a send
                self.transport.write(head)
                self.transport.write(data)
            else:
                self.transport.write(head + data)
        elif not self.started and self.cycle.response_started:
            self.started = True
            self.head = data
        else:
            self.transport.write(data)

    def close(self) -> None:
        """Close the connection once what is held is written."""
        head = self.head
        if head is not None:
            self.head = None
            self.transport.write(head)
        self.transport.close()

    def is_closing(self) -> bool:
        """Whether the connection is closing."""
        return self.transport.is_closing()
