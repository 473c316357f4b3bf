"""The connection life the sources' own clients share: one exchange at a time, a failed or
cancelled exchange closes the connection, a retired one closes after its reply."""

from __future__ import annotations

import asyncio

import pytest

from cachewatch.collectors.stream_connection import StreamConnection


async def _echo_server() -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            if line != b"silent\n":
                writer.write(line)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _connection(port: int) -> StreamConnection:
    return StreamConnection(*await asyncio.open_connection("127.0.0.1", port))


def test_exchanges_answer_in_turn_and_a_timed_out_one_closes_the_connection():
    async def run() -> None:
        server, port = await _echo_server()
        connection = await _connection(port)
        first, second = await asyncio.gather(
            connection.exchange(b"a\n", connection._reader.readline),
            connection.exchange(b"b\n", connection._reader.readline))
        assert (first, second) == (b"a\n", b"b\n")
        assert connection.usable
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(connection.exchange(b"silent\n", connection._reader.readline),
                                   0.2)
        assert connection.broken
        assert not connection.usable
        server.close()

    asyncio.run(run())


def test_a_retired_connection_closes_once_its_exchange_has_its_reply():
    async def run() -> None:
        server, port = await _echo_server()
        connection = await _connection(port)
        exchange = asyncio.ensure_future(connection.exchange(b"x\n", connection._reader.readline))
        await asyncio.sleep(0)  # the exchange holds the connection
        connection.retire()
        assert not connection.broken  # not cut mid-reply
        assert await exchange == b"x\n"
        assert connection.broken
        idle = await _connection(port)
        idle.retire()
        assert idle.broken  # an idle one closes at once
        server.close()

    asyncio.run(run())
