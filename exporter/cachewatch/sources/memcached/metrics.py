"""The Memcached source's metric families: declared here, next to the code that fills them.

The core families (lookups, latency, evictions, entries, bytes) carry ``layer="memcached"``;
the detail families below are this source's own. ``SPECS`` is the declaration a core that
gathers every source's specs reads; until it does, ``register`` adds them to the contract's
registry, which checks that no name is defined twice and feeds the README's metric reference.
"""

from __future__ import annotations

from ... import contract
from ...contract import PREFIX, Kind, MetricSpec

LAYER = "memcached"  # the `layer` label of the core families
GROUP = "memcached"


def _spec(name: str, kind: Kind, help_: str, labels: tuple[str, ...]) -> MetricSpec:
    return MetricSpec(PREFIX + name, kind, help_, labels, GROUP)


LIMIT_BYTES = _spec(
    "memcached_limit_bytes", Kind.GAUGE,
    "The memory limit for items (stats limit_maxbytes, the -m option).", ("cache",))
ITEMS_STORED = _spec(
    "memcached_items_stored_total", Kind.COUNTER,
    "Items stored since the server started (stats total_items): the base of the wasted share.",
    ("cache",))
EVICTED_UNFETCHED = _spec(
    "memcached_evicted_unfetched_total", Kind.COUNTER,
    "Items evicted without ever being read (stats evicted_unfetched): memory and writes spent"
    " on nothing; a share of items stored, in PromQL.", ("cache",))
EXPIRED_UNFETCHED = _spec(
    "memcached_expired_unfetched_total", Kind.COUNTER,
    "Items whose TTL ran out without them ever being read (stats expired_unfetched): cached for"
    " nobody.", ("cache",))
CONNECTIONS = _spec(
    "memcached_connections", Kind.GAUGE,
    "Client connections open now, the exporter's own included (stats curr_connections).",
    ("cache",))
INFO = _spec(
    "memcached_info", Kind.INFO,
    "Memcached server version; always 1.", ("cache", "version"))

SPECS: tuple[MetricSpec, ...] = (
    LIMIT_BYTES, ITEMS_STORED, EVICTED_UNFETCHED, EXPIRED_UNFETCHED, CONNECTIONS, INFO)


def register() -> None:
    """Add ``SPECS`` to the contract's registry (idempotent; a name taken by another spec
    is an error, as for the core's own)."""
    for spec in SPECS:
        if contract.SPECS.setdefault(spec.name, spec) is not spec:
            raise ValueError(f"{spec.name} is defined twice")
