"""An example ``alertmanager.yml`` routing cachewatch alerts by severity and layer."""

from __future__ import annotations

from typing import Any


def example() -> dict[str, Any]:
    """Critical pages on-call; cache alerts go to the team owning the layer."""
    return {
        "route": {
            "receiver": "default",
            "group_by": ["alertname", "layer", "cache"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {"matchers": ['severity="critical"'], "receiver": "on-call",
                 "continue": True},
                {"matchers": ['layer="docker_build"'], "receiver": "ci-team"},
                {"matchers": ['layer="registry"'], "receiver": "platform-team"},
                {"matchers": ['layer=~"redis|app"'], "receiver": "service-owners"},
            ],
        },
        "inhibit_rules": [
            # a target that is down cannot have a meaningful hit rate: say it once
            {"source_matchers": ['alertname="CachewatchTargetDown"'],
             "target_matchers": ['alertname=~"CacheHitRateLow|CacheLatencyP99High"'],
             "equal": ["cache"]},
        ],
        "receivers": [
            {"name": "default"},
            {"name": "on-call", "webhook_configs": [
                {"url": "http://alert-relay.example:9095/on-call", "send_resolved": True}]},
            {"name": "ci-team", "webhook_configs": [
                {"url": "http://alert-relay.example:9095/ci", "send_resolved": True}]},
            {"name": "platform-team", "webhook_configs": [
                {"url": "http://alert-relay.example:9095/platform", "send_resolved": True}]},
            {"name": "service-owners", "webhook_configs": [
                {"url": "http://alert-relay.example:9095/services", "send_resolved": True}]},
        ],
    }
