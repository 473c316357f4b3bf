"""Memcached's golden scenario: the collector reads the ``stats`` reply captured from a real
memcached 1.6.18 (``fixtures/stats-1.6.18.txt``, see ``fixtures/README.md``) instead of a live
server, so the golden file is about cachewatch's output. The probe is off: its round trips are
timings, not inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachewatch.sources.memcached.client import Connections, parse_stats
from cachewatch.sources.memcached.settings import MemcachedTarget

from support import Exporter, Golden

CAPTURED = Path(__file__).parent / "fixtures" / "stats-1.6.18.txt"


async def _captured_stats(self: Connections, target: MemcachedTarget) -> dict[str, str]:
    """The captured reply, parsed as a live one is (``END`` and the last line end dropped)."""
    lines = CAPTURED.read_bytes().split(b"\r\n")
    assert lines[-2:] == [b"END", b""], "the capture ends with END"
    return parse_stats(lines[:-2])


def _replay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Connections, "stats", _captured_stats)


def _feed(exporter: Exporter) -> None:
    """Nothing to send: the collector reads the captured stats."""


GOLDEN = Golden(("memcached",), _feed, {"memcached.targets": ["golden=127.0.0.1:1"],
                                        "memcached.probe_interval": 0}, prepare=_replay)
