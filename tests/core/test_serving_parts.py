"""The serving layer's parts that replaced per-request work: the deadline sweep (one timer per
server) and the head written with its body (one send per answer), each held to the answers and
timeouts they replaced."""

from __future__ import annotations

import asyncio
import socket

import pytest

from cachewatch.http.deadlines import NEVER, Sweep, interval
from cachewatch.http.writes import JOIN_AT_MOST, HeadWithBody

from support import Exporter, settings


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class _Cycle:
    response_started = False


def test_the_head_goes_out_with_the_body_and_a_continue_before_it():
    transport, cycle = _Transport(), _Cycle()
    writer = HeadWithBody(transport, cycle)  # type: ignore[arg-type]
    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the answer started: at once
    cycle.response_started = True
    writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    writer.write(b"body")
    writer.write(b"more")
    assert transport.writes[1:] == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"more"]


def test_a_held_head_is_written_before_a_close_and_a_large_body_is_not_copied():
    transport, cycle = _Transport(), _Cycle()
    cycle.response_started = True
    writer = HeadWithBody(transport, cycle)  # type: ignore[arg-type]
    writer.write(b"HEAD")
    writer.close()
    assert (transport.writes, transport.closed) == ([b"HEAD"], True)
    transport = _Transport()
    writer = HeadWithBody(transport, cycle)  # type: ignore[arg-type]
    large = b"x" * (JOIN_AT_MOST + 1)
    writer.write(b"HEAD")
    writer.write(large)
    assert transport.writes == [b"HEAD", large]


class _Connection:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = 0

    def expire(self) -> None:
        self.expired += 1
        self.deadline = NEVER


def _watching(loop: asyncio.AbstractEventLoop, *connections: _Connection) -> Sweep:
    """A fast sweep (every 10 ms) watching ``connections``."""
    sweep = Sweep(0.01)
    for connection in connections:
        sweep.watch(connection, loop)
    return sweep


def test_the_sweep_expires_connections_past_their_deadline_and_stops_when_none_are_left():
    async def run() -> tuple[int, int, bool]:
        loop = asyncio.get_running_loop()
        late, alive = _Connection(loop.time()), _Connection(NEVER)
        sweep = _watching(loop, late, alive)
        await asyncio.sleep(0.05)
        sweep.forget(late)
        sweep.forget(alive)
        await asyncio.sleep(0.03)
        return late.expired, alive.expired, sweep._handle is None

    assert asyncio.run(run()) == (1, 0, True)


class _Broken(_Connection):
    def expire(self) -> None:
        raise RuntimeError("transport gone")


def test_a_connection_whose_close_fails_does_not_end_the_other_timeouts(caplog):
    async def run() -> tuple[int, bool]:
        loop = asyncio.get_running_loop()
        broken, alive = _Broken(loop.time()), _Connection(NEVER)
        sweep = _watching(loop, broken, alive)
        await asyncio.sleep(0.03)
        alive.deadline = loop.time()  # becomes due after the failure: still expired
        await asyncio.sleep(0.05)
        still_watched = broken in sweep.timed
        sweep.forget(alive)
        return alive.expired, still_watched

    assert asyncio.run(run()) == (1, False)
    assert "closing a connection past its deadline failed" in caplog.text


def test_the_sweep_interval_is_a_second_or_half_the_shortest_timeout():
    assert interval(10.0, 60.0, 5.0) == 1.0
    assert interval(10.0, 0.5, 0.3) == pytest.approx(0.15)


@pytest.fixture
def exporter(exporter_factory) -> Exporter:
    return exporter_factory(settings([], **{"redis.enabled": False, "state.url": "memory://"}))


def _exchange(port: int, request: bytes, until: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while until not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def test_head_and_expect_continue_requests_are_answered_as_before(exporter):
    head = _exchange(exporter.port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"\r\n\r\n")
    # /healthz takes GET only: the answer's head, and no body (HEAD)
    assert head.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert head.endswith(b"\r\ncontent-length: 31\r\ncontent-type: application/json\r\n\r\n")
    body = b'{"events": []}'
    answer = _exchange(exporter.port, b"POST /webhooks/registry HTTP/1.1\r\nHost: x\r\n"
                       b"Expect: 100-continue\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(body), body), b"}")
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), answer
    assert answer.endswith(b'{"accepted": 0, "duplicates": 0, "rejected": []}')
