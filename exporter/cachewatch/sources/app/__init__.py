"""Application caches: the push API for Caffeine- and Micrometer-shaped counters, and the
in-process instrumentation (``cachewatch.instrument``) that pushes or exposes them.
"""

from ...source import Layer, Section, SourcePackage
from .settings import AppCacheSettings

SOURCE = SourcePackage(
    name="app",
    title="in-process caches",
    layers=(Layer("app", "Application caches"),),
    docs="sources/app-caches.md",
    first_step="push cache counters to <code>/api/v1/caches</code>",
    sections=(Section("app", AppCacheSettings, "cachewatch.sources.app.push:build"),),
    bundle="cachewatch.sources.app.bundle",
    contract="cachewatch.sources.app.contract",
    status="cachewatch.sources.app.status:section",
)
