"""Regression guards for a webhook request's cost in the HTTP layer and the receiver, counting
work, not time (time is noise on a shared machine): a keep-alive request arms no timer (the
server's deadline sweep times every connection), its answer is one write (head and body
together), and the whole request, from the socket's bytes to the answer, runs a bounded
number of Python and C function calls.

Counted on the real server (``serving``, as ``cachewatch serve`` runs it) in its own thread,
with hooks put on that thread's event loop, over one keep-alive connection sending registry
envelopes of one event, each id unique (so de-duplication does real work).
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from cachewatch.http.deadlines import Sweep

from support import Exporter, settings

PATH = "/webhooks/registry"
REQUESTS = 20  # per counted batch; the fewest calls of three batches is kept
# Python and C calls of one whole webhook request on the server (uvicorn's and asyncio's
# included): 274 when this guard was written, 339 before the per-request timers, the Guard's
# work for a web config with nothing on and the receiver's import and coroutines were cut;
# 246 (261 when the request's head and body reach the server in two reads) since the registry
# receiver remembers the label pairs its caps admitted, takes a declared body's budget in one
# step and awaits one coroutine less to the store (268 and 282 before). A bound a little
# above: calls are counted, not timed, so only a change of work moves it.
MAX_CALLS = 265


def _envelope(event_id: str) -> bytes:
    return json.dumps({"events": [{
        "id": event_id, "timestamp": "2026-11-24T12:00:00Z", "action": "pull",
        "target": {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 1024,
                   "digest": "sha256:0000", "repository": "team/app"},
        "request": {"method": "GET", "host": "r:5000"}}]}).encode()


class _Client:
    """One keep-alive connection, one request at a time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sent = 0

    def post(self) -> bytes:
        self.sent += 1
        body = _envelope(f"work-{self.sent}")
        self.sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd."
                          b"docker.distribution.events.v2+json\r\nContent-Length: %d\r\n\r\n%s"
                          % (PATH.encode(), len(body), body))
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = self.sock.recv(4096)
            assert chunk, "the server closed the connection"
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer
        return answer


class _Counts:
    """What the server's thread does while a hook is on: calls, timers, writes."""

    def __init__(self) -> None:
        self.calls = 0
        self.timers: list[Any] = []
        self.writes = 0

    def profile(self, frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            self.calls += 1


def _on_loop(loop: asyncio.AbstractEventLoop, action: Any) -> None:
    """Run ``action`` on the server's loop thread and wait for it."""
    done = threading.Event()

    def run() -> None:
        action()
        done.set()

    loop.call_soon_threadsafe(run)
    assert done.wait(10)


@contextmanager
def _counting(exporter: Exporter) -> Iterator[_Counts]:
    """Count on the server thread: function calls (a profile hook), timers armed on its loop,
    writes to the connection's socket."""
    (protocol,) = exporter.server.server_state.connections
    loop, transport, counts = protocol.loop, protocol.transport, _Counts()
    call_at, write = loop.call_at, transport.write

    def counted_call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        counts.timers.append(callback)
        return call_at(when, callback, *args, **kwargs)

    def counted_write(data: bytes) -> None:
        counts.writes += 1
        write(data)

    loop.call_at = counted_call_at  # type: ignore[method-assign]
    transport.write = counted_write  # type: ignore[method-assign]
    _on_loop(loop, lambda: sys.setprofile(counts.profile))
    try:
        yield counts
    finally:
        _on_loop(loop, lambda: sys.setprofile(None))
        del loop.call_at, transport.write


@pytest.fixture
def exporter(exporter_factory) -> Exporter:
    return exporter_factory(settings([], **{"redis.enabled": False, "state.url": "memory://"}))


def test_a_keep_alive_webhook_request_arms_no_timer_and_writes_once(exporter):
    client = _Client(exporter.port)
    for _ in range(5):  # warm: the receivers' lazy parts are loaded
        client.post()
    with _counting(exporter) as counts:
        for _ in range(REQUESTS):
            client.post()
    # The server's sweep may have rescheduled itself meanwhile: once per second at most.
    per_request = [t for t in counts.timers if getattr(t, "__func__", None) is not Sweep._run]
    assert per_request == []
    assert counts.writes == REQUESTS


def test_a_webhook_request_runs_a_bounded_number_of_calls(exporter):
    client = _Client(exporter.port)
    for _ in range(5):
        client.post()
    batches = []
    for _ in range(3):  # the fewest: a background sample of the status page may fall in one
        with _counting(exporter) as counts:
            for _ in range(REQUESTS):
                client.post()
        batches.append(counts.calls / REQUESTS)
    assert min(batches) <= MAX_CALLS, batches
