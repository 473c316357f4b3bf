"""A Redis Cluster's nodes, as one node describes them: ``CLUSTER SHARDS`` (Redis 7.0+) or
``CLUSTER NODES`` (older servers), and the signature that says when to ask again.

``CLUSTER SHARDS`` (RESP2) is a list of shards, each a flat ``[b"slots", [...], b"nodes",
[node, ...]]`` list, each node a flat list of ``field, value`` pairs (``id``, ``port``,
``tls-port``, ``ip``, ``endpoint``, ``hostname``, ``role``, ``health``...). ``CLUSTER NODES`` is
text, a line per node: ``<id> <ip:port@cport[,hostname]> <flags> <master-id> ...``.

The signature is what ``CLUSTER INFO`` says of the layout: the current epoch moves on every
failover and slot ownership change, the number of known nodes on every node added or forgotten,
the state on a cluster losing (or regaining) coverage. Same signature, same nodes: the collector
asks for the layout only when it changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ...resp import Reply
from .info import parse_info

MASTER, REPLICA = "master", "replica"
# Nodes the cluster itself does not use yet, or has no address for.
_UNUSABLE = frozenset({"handshake", "noaddr"})


@dataclass(frozen=True, order=True)
class Node:
    """One node: where to reach it and what it is."""

    host: str
    port: int
    role: str  # MASTER or REPLICA
    id: str = ""

    @property
    def address(self) -> str:
        """``host:port``, the ``node`` label."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _text(value: Reply) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _pairs(value: Reply) -> dict[str, Reply]:
    """A RESP2 flat ``[key, value, ...]`` list (or a RESP3 map) as a dict with text keys."""
    if isinstance(value, Mapping):
        return {_text(k): v for k, v in value.items()}
    if not isinstance(value, list):
        raise ValueError(f"expected a list of fields, got {type(value).__name__}")
    return {_text(k): v for k, v in zip(value[::2], value[1::2], strict=True)}


def from_shards(reply: Reply, seed_host: str, tls: bool) -> list[Node]:
    """The nodes of a ``CLUSTER SHARDS`` reply. ``seed_host`` stands in for a node that does not
    know its own address (``endpoint`` ``?`` or empty); ``tls``: use ``tls-port``."""
    if not isinstance(reply, list):
        raise ValueError(f"CLUSTER SHARDS answered {type(reply).__name__}, not a list")
    nodes = []
    for shard in reply:
        for fields in _pairs(shard).get("nodes") or []:
            node = _pairs(fields)
            endpoint = _text(node.get("endpoint") or node.get("ip") or b"")
            host = seed_host if endpoint in ("", "?") else endpoint
            port = int(node.get("tls-port" if tls and "tls-port" in node else "port") or 0)
            if port:
                role = MASTER if _text(node.get("role") or b"") == "master" else REPLICA
                nodes.append(Node(host, port, role, _text(node.get("id") or b"")))
    return sorted(nodes)


def from_nodes(reply: Reply, seed_host: str) -> list[Node]:
    """The nodes of a ``CLUSTER NODES`` reply (servers older than 7.0)."""
    if not isinstance(reply, bytes):
        raise ValueError(f"CLUSTER NODES answered {type(reply).__name__}, not text")
    nodes = []
    for line in _text(reply).splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        flags = set(fields[2].split(","))
        address = fields[1].split(",", 1)[0].split("@", 1)[0]
        host, _, port = address.rpartition(":")
        if flags & _UNUSABLE or not port.isdigit() or port == "0":
            continue
        role = MASTER if "master" in flags else REPLICA
        nodes.append(Node(host.strip("[]") or seed_host, int(port), role, fields[0]))
    return sorted(nodes)


def signature(reply: Reply) -> tuple[str, ...]:
    """What of ``CLUSTER INFO`` changes when the layout does (see the module's docstring)."""
    if not isinstance(reply, bytes):
        return ()
    info = parse_info(reply)
    return tuple(info.get(key, "") for key in (
        "cluster_current_epoch", "cluster_known_nodes", "cluster_size", "cluster_state"))
