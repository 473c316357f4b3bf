"""Application caches: the push API for Caffeine- and Micrometer-shaped counters, and the
in-process instrumentation (``cachewatch.instrument``) that pushes or exposes them.
"""

from ...source import Section, SourcePackage
from .settings import AppCacheSettings

SOURCE = SourcePackage(
    name="app",
    sections=(Section("app", AppCacheSettings, "cachewatch.sources.app.push:build"),),
    bundle="cachewatch.sources.app.bundle",
)
