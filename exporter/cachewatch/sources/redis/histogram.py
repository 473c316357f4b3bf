"""Redis 7 ``LATENCY HISTOGRAM``: per-command latency as cumulative Prometheus buckets.

The reply (RESP2, as the collector's clients speak it) is a flat list
``[command, [b"calls", n, b"histogram_usec", [usec, cumulative, usec, cumulative, ...]], ...]``;
a RESP3 client gets the same as maps. Redis iterates its hdr_histogram in powers of two from
1024 ns and writes each bucket's highest value in whole microseconds (1, 2, 4, 8, 16, 33, 66,
132, 264, ...), leaving out buckets where the count did not grow. Each key is mapped back to its
power of two and the counts are spread over the fixed ladder of ``contract``'s edges, so every
scrape has the same ``le`` set and a bucket left out carries the count below it.

Counts are since the server started (or ``CONFIG RESETSTAT``): a window is rate() in PromQL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from . import contract

EDGES = contract.REDIS_COMMAND_LATENCY_BUCKETS
LE = tuple(floatToGoString(edge) for edge in EDGES)  # how client libraries write `le`
EDGES_LE = (*LE, "+Inf")  # the ``le`` of every bucket line, as ``Families.add_cumulative`` takes


@dataclass
class CommandLatency:
    """One command's histogram on the contract's ladder: cumulative counts per edge."""

    calls: float
    cumulative: list[float]  # one per edge of ``EDGES``; +Inf is ``calls``

    def add(self, other: CommandLatency) -> None:
        """Fold ``other`` in (cumulative buckets on the same edges add up)."""
        self.calls += other.calls
        self.cumulative = [a + b for a, b in zip(self.cumulative, other.cumulative, strict=True)]

    def counts(self) -> list[float]:
        """The cumulative count of each edge of ``EDGES_LE`` (``+Inf`` last: ``calls``)."""
        return [*self.cumulative, self.calls]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _pairs(value: Mapping | list) -> Iterable[tuple]:
    """A RESP3 map or a RESP2 flat ``[key, value, key, value, ...]`` list, as pairs."""
    if isinstance(value, Mapping):
        return value.items()
    return zip(value[::2], value[1::2], strict=True)


def edge_index(usec: int) -> int:
    """The ladder index of a reply key: Redis writes bucket k's end, about 1.024 * 2^k
    microseconds (a little more, truncated to whole microseconds). Remembered: the keys are
    the same few dozen on every scrape."""
    index = _INDEX.get(usec)
    if index is None:
        index = max(0, round(math.log2(max(usec, 1) / 1.024)))
        if len(_INDEX) < 4096:  # keys come from the server: bounded all the same
            _INDEX[usec] = index
    return index


_INDEX: dict[int, int] = {}


def _command(fields: Mapping | list) -> CommandLatency:
    if fields.__class__ is list and len(fields) == 4 and fields[0] == b"calls" \
            and fields[2] == b"histogram_usec" and fields[3].__class__ is list:
        calls_reply, flat = fields[1], fields[3]  # what Redis 7 sends a RESP2 client
    else:
        info = {_text(key): value for key, value in _pairs(fields)}
        calls_reply, flat = info.get("calls", 0), info.get("histogram_usec", [])
    points = sorted(zip(map(int, flat[::2]), map(float, flat[1::2]), strict=True)
                    if flat.__class__ is list else
                    ((int(k), float(v)) for k, v in _pairs(flat)))
    return _latency(float(calls_reply), points)


def _latency(calls: float, points: list[tuple[int, float]]) -> CommandLatency:
    """A command's ``(usec, cumulative count)`` keys, in ascending order, on the ladder."""
    # Each edge carries the count of the last key at or below it (cumulative: a key's count
    # holds up to the next key). Keys come in ascending order, so their edges do too: the
    # edges up to a key's own carry the count before it, a run at a time, not edge by edge.
    cumulative: list[float] = []
    count, filled, edges = 0.0, 0, len(EDGES)
    for usec, value in points:
        if (index := edge_index(usec)) >= edges:
            break  # past the ladder's last edge: so are the keys after it
        if index > filled:
            cumulative += [count] * (index - filled)
            filled = index
        count = value
    cumulative += [count] * (edges - filled)
    return CommandLatency(calls, cumulative)


class Histograms(dict[str, CommandLatency]):
    """A ``LATENCY HISTOGRAM`` reply already read into ladders, straight from the wire
    (``scan``)."""


def parse_latency_histogram(reply: Mapping | list) -> dict[str, CommandLatency]:
    """Command name (``get``, ``config|get``) -> its histogram on the contract's ladder."""
    if reply.__class__ is Histograms:
        return reply  # type: ignore[return-value]
    return {_text(name): _command(fields) for name, fields in _pairs(reply)}


# The RESP2 reply, as Redis 7 writes it: ``*<2n>``, then per command its name and
# ``*4 $5 calls :<n> $14 histogram_usec *<2k>`` followed by the 2k integers.
_TOP = re.compile(rb"\*(\d+)\r\n")
_COMMAND = re.compile(rb"\$(\d+)\r\n([^\r\n]*)\r\n\*4\r\n\$5\r\ncalls\r\n:(\d+)\r\n"
                      rb"\$14\r\nhistogram_usec\r\n\*(\d+)\r\n((?::\d+\r\n)*)")


def scan(data: bytes) -> tuple[Histograms, int] | None:
    """The ``LATENCY HISTOGRAM`` reply at the start of ``data`` read in one regular-expression
    match per command (the general RESP parser takes five parses and a list per command), and
    where it ends; ``None`` for anything not exactly that shape (an error reply, a reply not
    all received yet, a server that writes it otherwise): the general parser reads those."""
    top = _TOP.match(data)
    if top is None or int(top[1]) % 2:
        return None
    pos, found = top.end(), Histograms()
    for _ in range(int(top[1]) // 2):
        command = _COMMAND.match(data, pos)
        if command is None or int(command[1]) != len(command[2]):
            return None
        flat = list(map(int, command[5][1:-2].split(b"\r\n:"))) if command[5] else []
        if len(flat) != int(command[4]) or len(flat) % 2:
            return None
        points = sorted(zip(flat[::2], map(float, flat[1::2]), strict=True))
        found[_text(command[2])] = _latency(float(command[3]), points)
        pos = command.end()
    return found, pos
