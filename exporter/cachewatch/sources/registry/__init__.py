"""Container registries: Distribution notifications and Harbor webhooks (pulls, pushes, bytes,
de-duplicated by event id), and the pull-through cache's hits and misses from its debug endpoint.
"""

from ...source import Activity, Layer, Section, SourcePackage
from .contract import REGISTRY_IMAGE_PULLS
from .settings import RegistryProxySettings, RegistrySettings

SOURCE = SourcePackage(
    name="registry",
    title="registry",
    layers=(Layer("registry", "Registry pull-through caches", generic_alerts=False,
                  receiver="platform-team", relay_path="platform", latency=False,
                  fed_by=("registry_proxy",)),),  # notifications feed the pulls below
    activity=(Activity(REGISTRY_IMAGE_PULLS.family_name, "pulls", "registry", "repository",
                       "Registry pulls by repository"),),
    docs="sources/registry.md",
    first_step="point a registry's notifications at <code>/webhooks/registry</code>",
    sections=(
        Section("registry", RegistrySettings, "cachewatch.sources.registry.events:build"),
        Section("registry_proxy", RegistryProxySettings,
                "cachewatch.sources.registry.proxy:build", layer="registry"),
    ),
    bundle="cachewatch.sources.registry.bundle",
    thresholds="cachewatch.sources.registry.thresholds:RegistryThresholds",
    contract="cachewatch.sources.registry.contract",
    chatty_loggers=("httpx", "httpcore"),  # the pull-through cache reader: one per scrape
)
