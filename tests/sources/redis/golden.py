"""Redis' golden scenario: the collector reads INFO and the LATENCY HISTOGRAM captured together
from a real 7.0 redis-server (tests/fixtures/redis); the golden file is about our output, not
Redis'."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from cachewatch.sources.redis.client import ClientCache

from support import FIXTURES, Exporter, Golden


class _Captured:
    """A connection that answers every command with its captured reply; a reply the caller
    reads straight from the bytes (``last``) is read so from the bytes Redis wrote."""

    version = None

    async def call(self, *commands: tuple[str, ...], raise_errors: bool = True,
                   last: Callable[[bytes], tuple[object, int] | None] | None = None
                   ) -> list[object]:
        replies = [_captured(command) for command in commands]
        if last is not None:
            wire = _wire(replies[-1])
            read = last(wire)
            assert read is not None, "the reply was not read"
            assert read[1] == len(wire), "the reply was not read whole"
            replies[-1] = read[0]
        return replies


def _wire(value: object) -> bytes:
    """A reply as the server writes it to a RESP2 client."""
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    assert isinstance(value, list)
    return b"*%d\r\n" % len(value) + b"".join(_wire(item) for item in value)


async def _captured_replies(self: ClientCache, target: object, work) -> object:
    return await work(_Captured())


def _captured(command: tuple[str, ...]) -> object:
    """The captured reply: INFO text as bytes, the histogram as RESP2 lists of bytes and ints."""
    if command == ("LATENCY", "HISTOGRAM"):
        def resp2(value: object) -> object:
            if isinstance(value, list):
                return [resp2(item) for item in value]
            return value.encode() if isinstance(value, str) else value

        return resp2(json.loads((FIXTURES / "redis" / "latency-histogram.json").read_text()))
    return (FIXTURES / "redis" / f"info-{command[1]}.txt").read_bytes()


def _replay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ClientCache, "using", _captured_replies)


def _feed(exporter: Exporter) -> None:
    """Nothing to send: the collector reads the captured INFO."""


GOLDEN = Golden(("redis",), _feed, {"redis.targets": ["golden=redis://127.0.0.1:1"]},
                prepare=_replay)
