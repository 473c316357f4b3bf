"""An example ``alertmanager.yml`` routing cachewatch's alerts, and only those, by layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..sources import layers
from .part import BundlePart
from .thresholds import Thresholds

# The core's alerts a cache that cachewatch cannot read would raise: inhibited while it is down.
CACHE_ALERTS = ("CacheHitRateLow", "CacheLatencyP99High")


def routes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A route per team (receiver) with the layers it owns, and the teams' receivers, in the
    receivers' alphabetical order."""
    owned: dict[tuple[str, str], list[str]] = {}
    for layer in layers():
        owned.setdefault((layer.receiver, layer.relay_path), []).append(layer.name)
    found, receivers = [], []
    for (receiver, path), names in sorted(owned.items()):
        matcher = f'layer="{names[0]}"' if len(names) == 1 else f'layer=~"{"|".join(names)}"'
        found.append({"matchers": [matcher], "receiver": receiver})
        receivers.append({"name": receiver, "webhook_configs": [
            {"url": f"http://alert-relay.example:9095/{path}", "send_resolved": True}]})
    return found, receivers


def example(t: Thresholds, alert_names: Sequence[str],
            parts: Sequence[BundlePart]) -> dict[str, Any]:
    """A subtree matching exactly the bundle's ``alert_names`` (another team's RedisDown or
    CacheSomething stays on its own route), grouped and inhibited per cache of the fleet:
    its identity labels and ``cache``. Cache alerts go to the team owning the layer;
    cachewatch's own health to whoever runs it."""
    fleet = list(t.identity_labels)
    team_routes, team_receivers = routes()
    inhibited = [*CACHE_ALERTS, *(name for part in parts for name in part.cache_alerts)]
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
                "routes": team_routes,
            }],
        },
        "inhibit_rules": [
            # a target that cannot be read has no meaningful hit rate or latency: say it once
            {"source_matchers": ['alertname="CachewatchTargetDown"'],
             "target_matchers": [f'alertname=~"{"|".join(inhibited)}"'],
             "equal": [*fleet, "cache"]},
        ],
        "receivers": [
            {"name": "default"},
            {"name": "cachewatch-operators", "webhook_configs": [
                {"url": "http://alert-relay.example:9095/observability", "send_resolved": True}]},
            *team_receivers,
        ],
    }
