"""An example ``alertmanager.yml`` routing cachewatch's alerts, and only those, by layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .thresholds import Thresholds

# The alerts a cache that cachewatch cannot read would raise: inhibited while it is down.
CACHE_ALERTS = ("CacheHitRateLow", "CacheLatencyP99High", "RedisServerLatencyP99High")


def example(t: Thresholds, alert_names: Sequence[str]) -> dict[str, Any]:
    """A subtree matching exactly the bundle's ``alert_names`` (another team's RedisDown or
    CacheSomething stays on its own route), grouped and inhibited per cache of the fleet:
    its identity labels and ``cache``. Cache alerts go to the team owning the layer;
    cachewatch's own health to whoever runs it."""
    fleet = list(t.identity_labels)
    return {
        "route": {
            "receiver": "default",
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [{
                "matchers": [f'alertname=~"{"|".join(alert_names)}"'],
                "receiver": "cachewatch-operators",
                "group_by": ["alertname", *fleet, "layer", "cache"],
                "routes": [
                    {"matchers": ['layer="docker_build"'], "receiver": "ci-team"},
                    {"matchers": ['layer="registry"'], "receiver": "platform-team"},
                    {"matchers": ['layer=~"redis|app"'], "receiver": "service-owners"},
                ],
            }],
        },
        "inhibit_rules": [
            # a target that cannot be read has no meaningful hit rate or latency: say it once
            {"source_matchers": ['alertname="CachewatchTargetDown"'],
             "target_matchers": [f'alertname=~"{"|".join(CACHE_ALERTS)}"'],
             "equal": [*fleet, "cache"]},
        ],
        "receivers": [
            {"name": "default"},
            {"name": "cachewatch-operators", "webhook_configs": [
                {"url": "http://alert-relay.example:9095/observability", "send_resolved": True}]},
            {"name": "ci-team", "webhook_configs": [
                {"url": "http://alert-relay.example:9095/ci", "send_resolved": True}]},
            {"name": "platform-team", "webhook_configs": [
                {"url": "http://alert-relay.example:9095/platform", "send_resolved": True}]},
            {"name": "service-owners", "webhook_configs": [
                {"url": "http://alert-relay.example:9095/services", "send_resolved": True}]},
        ],
    }
