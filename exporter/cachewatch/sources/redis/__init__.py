"""Redis: ``INFO``, ``INFO latencystats`` and ``LATENCY HISTOGRAM`` of each target, an active
latency probe, ``/probe``, Redis Cluster targets and ``cachewatch doctor redis://...``.

Everything about how Redis is measured lives in this package: its settings, target handling
(credentials, TLS, secrets file), the INFO and histogram parsers, the collector, the probe and
its bundle part.
"""

from ...source import Doctor, Layer, Section, SourcePackage
from .contract import REDIS_FINDINGS
from .settings import RedisSettings

SOURCE = SourcePackage(
    name="redis",
    title="Redis",
    layers=(Layer("redis", "Redis", findings=REDIS_FINDINGS.family_name),),
    docs="sources/redis.md",
    first_step="Give cachewatch a Redis to read (<code>--redis-target redis://host:6379</code>)",
    sections=(Section("redis", RedisSettings, "cachewatch.sources.redis.collector:build",
                      probe_example="redis://host:6379"),),
    bundle="cachewatch.sources.redis.bundle",
    contract="cachewatch.sources.redis.contract",
    doctor=Doctor("cachewatch.sources.redis.doctor.command:doctor",
                  "redis://HOST:PORT (a Redis)", schemes=("redis", "rediss")),
)
