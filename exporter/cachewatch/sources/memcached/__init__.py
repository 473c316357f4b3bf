"""Memcached: ``stats`` of each target (hits, misses, evictions, memory, items stored and never
read), an active latency probe, ``/probe``.

Everything about how Memcached is measured lives in this package: its settings, the text
protocol client, the collector, the probe, its metric specs and its bundle part. Only the
settings and the metric specs are imported when the collector is off.
"""

from ...source import Section, SourcePackage
from .metrics import register
from .settings import MemcachedSettings

register()

SOURCE = SourcePackage(
    name="memcached",
    sections=(Section("memcached", MemcachedSettings,
                      "cachewatch.sources.memcached.collector:build"),),
    bundle="cachewatch.sources.memcached.bundle",
)
