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
    calls = float(calls_reply)
    points = sorted(zip(map(int, flat[::2]), map(float, flat[1::2]), strict=True)
                    if flat.__class__ is list else
                    ((int(k), float(v)) for k, v in _pairs(flat)))
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


def parse_latency_histogram(reply: Mapping | list) -> dict[str, CommandLatency]:
    """Command name (``get``, ``config|get``) -> its histogram on the contract's ladder."""
    return {_text(name): _command(fields) for name, fields in _pairs(reply)}
