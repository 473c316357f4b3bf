"""Container registries: Distribution notifications and Harbor webhooks (pulls, pushes, bytes,
de-duplicated by event id), and the pull-through cache's hits and misses from its debug endpoint.
"""

from ...source import Section, SourcePackage
from .settings import RegistryProxySettings, RegistrySettings

SOURCE = SourcePackage(
    name="registry",
    sections=(
        Section("registry", RegistrySettings, "cachewatch.sources.registry.events:build"),
        Section("registry_proxy", RegistryProxySettings,
                "cachewatch.sources.registry.proxy:build"),
    ),
    bundle="cachewatch.sources.registry.bundle",
)
