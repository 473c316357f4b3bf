"""The registry's part of the bundle: the pull-through cache alert and its promtool case, the
registry dashboard and the webhook receiver's refusals."""

from __future__ import annotations

from typing import Any

from ... import contract
from ...bundle.alerting import alert
from ...bundle.panels import NEUTRAL, DashboardSpec, Panel, hit_steps
from ...bundle.part import BundlePart, Rejections
from ...bundle.promtool import counter, expected, lookups
from ...bundle.series import HIT_RATIO, TOTAL
from ...bundle.thresholds import Thresholds, seconds

L = contract


def panels(t: Thresholds) -> list[Panel]:
    """What is pulled, how much the pull-through cache serves, and the webhooks' health."""
    sel = '{repository=~"$repository"}'
    return [
        Panel("timeseries", "Image pulls by repository",
              ((f"topk(10, sum by (repository) (rate({L.REGISTRY_IMAGE_PULLS.name}{sel}[5m])))",
                "{{repository}}"),), "reqps", NEUTRAL, 12),
        Panel("timeseries", "Bytes pulled by repository",
              ((f"topk(10, sum by (repository) (rate({L.REGISTRY_PULLED_BYTES.name}{sel}[5m])))",
                "{{repository}}"),), "Bps", NEUTRAL, 12),
        Panel("timeseries", "Pull-through cache hit rate",
              ((f'{HIT_RATIO}{{layer="registry"}}', "{{cache}}"),), "percentunit",
              hit_steps(t.registry_hit_rate), 12),
        Panel("timeseries", "Layer reuse: mounts and HEAD checks",
              ((f"sum(rate({L.REGISTRY_BLOB_MOUNTS.name}[5m]))", "mounts"),
               (f"sum(rate({L.REGISTRY_HEAD_CHECKS.name}[5m]))", "HEAD checks")),
              "reqps", NEUTRAL, 12),
        Panel("timeseries", "Webhook health",
              ((f"sum by (source, reason) (rate({L.REGISTRY_REJECTED.name}[5m]))",
                "rejected {{source}} {{reason}}"),
               (f"sum by (source) (rate({L.REGISTRY_DUPLICATES.name}[5m]))",
                "duplicates {{source}}"),
               (f"sum by (source) (rate({L.REGISTRY_EVENTS.name}[5m]))", "events {{source}}")),
              "reqps", NEUTRAL, 12),
        Panel("timeseries", "Registry notification queue",
              ((f"{L.REGISTRY_NOTIFICATIONS_PENDING.name}", "{{registry}} {{endpoint}}"),),
              "none", (("green", None), ("orange", 100)), 12),
    ]


DASHBOARD = DashboardSpec(
    "registry", "cachewatch-registry", "cachewatch: registry", panels,
    (("repository", f"label_values({L.REGISTRY_IMAGE_PULLS.name}, repository)"),))


def _pull_through_alert(t: Thresholds) -> dict[str, Any]:
    return alert(
        "RegistryPullThroughHitRateLow",
        f'{HIT_RATIO}{{layer="registry"}} < {t.registry_hit_rate}\n'
        f"and on (layer, cache) {TOTAL} > {t.min_lookups_per_second / 10}",
        t.registry_for, "warning",
        f"Pull-through cache {{{{ $labels.cache }}}} hit rate below "
        f"{t.registry_hit_rate:.0%}",
        "The pull-through cache {{ $labels.cache }} served "
        "{{ $value | humanizePercentage }} of requests from its own storage.",
        DASHBOARD.uid, t, layer="registry")


def alerts(t: Thresholds) -> list[dict[str, Any]]:
    """A pull-through cache going upstream for what it should serve itself."""
    return [_pull_through_alert(t)]


def _pull_through_case(t: Thresholds) -> dict[str, Any]:
    rule = _pull_through_alert(t)
    hold = seconds(t.registry_for) // 60
    minutes = hold + 30
    bad, good = t.registry_hit_rate / 2, (1 + t.registry_hit_rate) / 2
    busy = t.min_lookups_per_second  # pulls are rarer than cache lookups
    value = f"{bad * 100:.4g}%"
    return {
        "interval": "1m",
        "input_series": [
            *lookups("registry", "mirror", counter(busy * bad, minutes),
                     counter(busy * (1 - bad), minutes)),
            *lookups("registry", "warm", counter(busy * good, minutes),
                     counter(busy * (1 - good), minutes)),
            *lookups("registry", "idle", f"0x{minutes}", f"0x{minutes}"),
            *lookups("registry", "trickle", counter(busy / 40 * bad, minutes),
                     counter(busy / 40 * (1 - bad), minutes)),
        ],
        "alert_rule_test": [
            {"eval_time": f"{hold - 5}m", "alertname": "RegistryPullThroughHitRateLow",
             "exp_alerts": []},  # still pending: `for` not reached
            {"eval_time": f"{hold + 10}m", "alertname": "RegistryPullThroughHitRateLow",
             "exp_alerts": [expected(rule, {"layer": "registry", "cache": "mirror"}, value)]},
        ],
    }


def tests(t: Thresholds) -> list[dict[str, Any]]:
    """A cold mirror alerts once ``for`` has passed; warm, idle and trickling ones do not."""
    return [_pull_through_case(t)]


PART = BundlePart(
    dashboard=DASHBOARD, alert_prefix="Registry", alert_rules=alerts, alert_tests=tests,
    rejections=Rejections(
        L.REGISTRY_REJECTED.name, "registry", position=0,
        test_series=(('source="distribution",reason="malformed_json"', "0x5 4x25"),),
        test_firing=(("malformed_json", "4"),)))
