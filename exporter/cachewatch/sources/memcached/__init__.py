"""Memcached: ``stats`` of each target (hits, misses, evictions, memory, items stored and never
read), an active latency probe, ``/probe``.

Everything about how Memcached is measured lives in this package: its settings, the text
protocol client, the collector, the probe, its metric families and its bundle part. Only the
settings are imported when the collector is off.
"""

from ...source import Layer, Section, SourcePackage
from .settings import MemcachedSettings

SOURCE = SourcePackage(
    name="memcached",
    title="Memcached",
    layers=(Layer("memcached", "Memcached"),),
    docs="sources/memcached.md",
    first_step="read a Memcached (<code>--enable-collector memcached --memcached-target "
               "host:11211</code>)",
    sections=(Section("memcached", MemcachedSettings,
                      "cachewatch.sources.memcached.collector:build",
                      probe_example="host:11211"),),
    bundle="cachewatch.sources.memcached.bundle",
    contract="cachewatch.sources.memcached.contract",
)
