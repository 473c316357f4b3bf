"""One read of one Redis server: ``INFO`` (default, latencystats, commandstats) and, on servers
that have it, ``LATENCY HISTOGRAM``, in one pipelined round trip.

Whether a server has ``LATENCY HISTOGRAM`` (Redis 7.0+) is decided once per connection, from the
``redis_version`` of ``INFO server``: the first read on a connection learns the version and, on
7.0+, asks for the histogram in a second round trip; later reads pipeline it with ``INFO``. An
older server is never sent the command, so it answers no error on every scrape, and its latency
comes from ``INFO latencystats`` (empty before 7.0) and the client-side probe alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...resp import Reply, ReplyError
from .client import ClientCache, Connection
from .histogram import scan
from .info import parse_commandstats, parse_info
from .settings import RedisTarget

# Three INFO calls, not one with three sections: Redis < 7 takes one section per call.
INFO = (("INFO", "default"), ("INFO", "latencystats"), ("INFO", "commandstats"))
HISTOGRAM = ("LATENCY", "HISTOGRAM")
HISTOGRAM_SINCE = (7, 0)


@dataclass(frozen=True)
class NodeRead:
    """What one server answered: its INFO (default and latencystats), its commandstats
    (``command -> (calls, usec)``), its histogram reply (None when not asked, an error reply as
    a value when refused) and the replies to the ``extra`` commands, in order."""

    info: dict[str, str]
    commands: dict[str, tuple[float, float]]
    histogram: Reply | None
    extra: list[Reply]


def version(info: dict[str, str]) -> tuple[int, ...]:
    """``redis_version:7.0.15`` -> ``(7, 0, 15)``; ``()`` when absent or not numbers."""
    try:
        return tuple(int(part) for part in info.get("redis_version", "").split("."))
    except ValueError:
        return ()


def _info(replies: list[Reply]) -> tuple[dict[str, str], dict[str, tuple[float, float]]]:
    """The INFO replies (``INFO``'s order) as fields, and commandstats on its own."""
    for reply in replies:
        if isinstance(reply, ReplyError):
            raise reply
        if not isinstance(reply, bytes):
            raise ValueError(f"INFO answered {type(reply).__name__}, not text")
    info = parse_info(replies[0])  # type: ignore[arg-type]
    info.update(parse_info(replies[1]))  # type: ignore[arg-type]
    return info, parse_commandstats(replies[2])  # type: ignore[arg-type]


async def read_node(clients: ClientCache, target: RedisTarget, histogram: bool,
                    extra: tuple[tuple[str, ...], ...] = ()) -> NodeRead:
    """Read ``target``; ``histogram``: whether the histogram is wanted at all (a setting)."""

    async def work(connection: Connection) -> NodeRead:
        known = connection.version
        ask = histogram and known is not None and known >= HISTOGRAM_SINCE
        commands = (*INFO, *extra, *((HISTOGRAM,) if ask else ()))
        # Errors come back as values: a refused LATENCY HISTOGRAM must not fail the read.
        replies = await connection.call(*commands, raise_errors=False,
                                        last=scan if ask else None)
        info, stats = _info(replies[:len(INFO)])
        others = replies[len(INFO):len(INFO) + len(extra)]
        if ask:
            return NodeRead(info, stats, replies[-1], others)
        if known is None:
            connection.version = version(info)
            if histogram and connection.version >= HISTOGRAM_SINCE:
                reply = (await connection.call(HISTOGRAM, raise_errors=False, last=scan))[0]
                return NodeRead(info, stats, reply, others)
        return NodeRead(info, stats, None, others)

    return await clients.using(target, work)
