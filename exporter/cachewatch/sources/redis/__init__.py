"""Redis: ``INFO``, ``INFO latencystats`` and ``LATENCY HISTOGRAM`` of each target, an active
latency probe, ``/probe``.

Everything about how Redis is measured lives in this package: its settings, target handling
(credentials, TLS, secrets file), the INFO and histogram parsers, the collector, the probe and
its bundle part.
"""

from ...source import Section, SourcePackage
from .settings import RedisSettings

SOURCE = SourcePackage(
    name="redis",
    sections=(Section("redis", RedisSettings, "cachewatch.sources.redis.collector:build"),),
    bundle="cachewatch.sources.redis.bundle",
)
