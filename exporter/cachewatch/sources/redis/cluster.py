"""A target that is a Redis Cluster, read through any one of its nodes as one cache.

A configured target whose ``INFO`` says ``cluster_enabled:1`` is a cluster: no setting says so.
Its layout comes from the node it names (``CLUSTER SHARDS``, or ``CLUSTER NODES`` before 7.0,
``topology``); every master and replica is then read side by side, each with ``CLUSTER INFO``
in the same pipeline, so a scrape costs the slowest node's round trip, not the sum of them.

The layout is asked for again only when it changed: a node's ``CLUSTER INFO`` signature differs
from the one recorded with the layout (a failover, a node added or forgotten, slots moved), a
node answers with another role than the layout gave it, or no node answered at all. Nothing is
re-read on a quiet scrape. (``MOVED`` redirections answer keyed commands only; the collector
sends none, so the signature is what tells it the slots moved.)

Every node, the one named included, is reached with the configured target's credentials and TLS
settings. A node that does not answer within the first part of the deadline is reported down and
the cluster ``partial``; the others are reported all the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from ...resp import Reply, ReplyError
from .client import ClientCache
from .node import NodeRead, read_node
from .settings import RedisTarget, address_label
from .topology import MASTER, Node, from_nodes, from_shards, signature

CLUSTER_INFO = ("CLUSTER", "INFO")
# The share of the deadline the first round of node reads may take: what is left is for a new
# layout and the reads of the nodes it adds.
FIRST_ROUND = 0.6
_INFO_ROLE = {"master": MASTER, "slave": "replica"}


def is_cluster(info: dict[str, str]) -> bool:
    """Whether a server's ``INFO`` says it is a cluster node."""
    return info.get("cluster_enabled") == "1"


class ClusterError(ConnectionError):
    """No node of the cluster answered; the message names the node tried first."""


Outcome = NodeRead | BaseException


class Cluster:
    """The nodes of one cluster target and the signature of their layout."""

    def __init__(self, seed: RedisTarget, clients: ClientCache, histogram: bool) -> None:
        self._seed = seed
        self._clients = clients
        self._histogram = histogram
        self.nodes: list[Node] = []
        self._signature: tuple[str, ...] | None = None
        self.discoveries = 0  # layouts asked for: tests and the benchmark check it stays put

    def target(self, node: Node) -> RedisTarget:
        """The seed's connection settings (credentials, TLS) at ``node``'s address."""
        scheme = "rediss" if self._seed.tls else "redis"
        return self._seed.model_copy(update={"url": f"{scheme}://{node.address}",
                                             "name": node.address})

    async def read(self, budget: float) -> dict[Node, Outcome]:
        """Every node's read (or why it failed), the layout refreshed first when it changed."""
        started = time.monotonic()
        if not self.nodes:
            await self._discover([self._seed])
        outcomes = await self._read_all(self.nodes, budget * FIRST_ROUND)
        if self._changed(outcomes):
            answered = [self.target(n) for n, o in outcomes.items() if isinstance(o, NodeRead)]
            await self._discover(answered or [self._seed])
            left = budget - (time.monotonic() - started)
            new = [node for node in self.nodes if node not in outcomes]
            outcomes.update(await self._read_all(new, left))
            outcomes = {node: outcomes[node] for node in self.nodes}
        return outcomes

    async def _read_all(self, nodes: Sequence[Node], budget: float) -> dict[Node, Outcome]:
        tasks = {node: asyncio.ensure_future(read_node(
            self._clients, self.target(node), self._histogram, (CLUSTER_INFO,)))
            for node in nodes}
        try:
            if tasks:
                await asyncio.wait(tasks.values(), timeout=max(budget, 0.0))
        finally:  # the scrape's own deadline may cancel this wait: no read outlives it
            for task in tasks.values():
                task.cancel()
        outcomes: dict[Node, Outcome] = {}
        for node, task in tasks.items():
            if not task.done() or task.cancelled():
                outcomes[node] = TimeoutError(f"no answer within {budget:.3g}s")
            else:
                outcomes[node] = task.exception() or task.result()
        return outcomes

    def _changed(self, outcomes: dict[Node, Outcome]) -> bool:
        """Whether the layout must be asked for again (see the module's docstring)."""
        answered = {node: o for node, o in outcomes.items() if isinstance(o, NodeRead)}
        if not answered:
            return True
        for node, read in answered.items():
            if signature(read.extra[0]) != self._signature:
                return True
            if _INFO_ROLE.get(read.info.get("role", ""), node.role) != node.role:
                return True
        return False

    async def _discover(self, through: Sequence[RedisTarget]) -> None:
        """Ask the first node that answers for the layout; raise if none does."""
        first: BaseException | None = None
        for target in through:
            try:
                self.nodes, self._signature = await self._layout(target)
            except (OSError, ReplyError, ValueError, asyncio.IncompleteReadError) as exc:
                first = first or exc
                continue
            self.discoveries += 1
            return
        raise ClusterError(f"no node of the cluster at {address_label(self._seed.url)} "
                           f"answered: {first}") from first

    async def _layout(self, target: RedisTarget) -> tuple[list[Node], tuple[str, ...]]:
        host = target.url.split("://", 1)[1].rsplit(":", 1)[0].strip("[]")
        shards, info = await self._clients.call(target, ("CLUSTER", "SHARDS"), CLUSTER_INFO,
                                                raise_errors=False)
        if isinstance(info, ReplyError):
            raise info
        nodes = _nodes(shards, await self._older(target, shards), host, target.tls)
        if not nodes:
            raise ValueError(f"{address_label(target.url)} lists no cluster nodes")
        return nodes, signature(info)

    async def _older(self, target: RedisTarget, shards: Reply) -> Reply | None:
        """``CLUSTER NODES`` where ``CLUSTER SHARDS`` is unknown (Redis before 7.0)."""
        if not isinstance(shards, ReplyError):
            return None
        return (await self._clients.call(target, ("CLUSTER", "NODES")))[0]


def _nodes(shards: Reply, nodes: Reply | None, host: str, tls: bool) -> list[Node]:
    return from_nodes(nodes, host) if nodes is not None else from_shards(shards, host, tls)


