"""The registry's part of the bundle: the pull-through cache alert and its promtool case, the
registry dashboard and the webhook receiver's refusals."""

from __future__ import annotations

from typing import Any

from ...bundle.alerting import PanelLink, alert
from ...bundle.goals import Goal, generic
from ...bundle.panels import NEUTRAL, DashboardSpec, Panel, fleet, hit_steps, legend
from ...bundle.part import BundlePart, Rejections
from ...bundle.promtool import counter, expected, lookups
from ...bundle.series import HIT_RATIO, TOTAL
from ...bundle.thresholds import Thresholds, seconds
from . import contract, replication_bundle
from .thresholds import RegistryThresholds

L = contract


def _top(t: Thresholds, metric: str, sel: str) -> str:
    """Per-repository rate of the ten repositories with the most over the whole time range:
    ranked once at its end (``@ end()``), so the panel shows ten lines, not ten per step."""
    by = t.by("repository")
    return (f"sum by ({by}) (rate({metric}{sel}[$__rate_interval]))\n"
            f"and on ({by}) topk(10, sum by ({by}) (increase({metric}{sel}[$__range] @ end())))")


def panels(t: Thresholds) -> list[Panel]:
    """What is pulled, how much the pull-through cache serves, and the webhooks' health."""
    sel = fleet(t, 'repository=~"$repository"')
    one = fleet(t)
    registry = fleet(t, 'layer="registry"')
    rate = "[$__rate_interval]"
    return [
        Panel("timeseries", "Image pulls by repository",
              ((_top(t, L.REGISTRY_IMAGE_PULLS.name, sel), legend(t, "{{repository}}")),),
              "reqps", NEUTRAL, 12,
              "Manifest GETs per second (image pulls), the ten most pulled repositories."),
        Panel("timeseries", "Bytes pulled by repository",
              ((_top(t, L.REGISTRY_PULLED_BYTES.name, sel), legend(t, "{{repository}}")),),
              "Bps", NEUTRAL, 12, "Bytes served per second, the ten heaviest repositories."),
        Panel("timeseries", "Pull-through cache hit rate",
              ((f"{HIT_RATIO}{registry}", legend(t, "{{cache}}")),),
              "percentunit", hit_steps(t.of(RegistryThresholds).registry_hit_rate), 12,
              "Share of the pull-through cache's requests served from its own storage; the "
              "line is where RegistryPullThroughHitRateLow fires."),
        Panel("timeseries", "Layer reuse: mounts and HEAD checks",
              ((f"sum by ({t.by()}) (rate({L.REGISTRY_BLOB_MOUNTS.name}{sel}{rate}))",
                legend(t, "mounts")),
               (f"sum by ({t.by()}) (rate({L.REGISTRY_HEAD_CHECKS.name}{sel}{rate}))",
                legend(t, "HEAD checks"))),
              "reqps", NEUTRAL, 12,
              "Cross-repository blob mounts and manifest HEAD checks: layers and images "
              "clients already had, not transferred again."),
        Panel("timeseries", "Webhook health",
              ((f"sum by ({t.by('source', 'reason')}) "
                f"(rate({L.REGISTRY_REJECTED.name}{one}{rate}))",
                legend(t, "rejected {{source}} {{reason}}")),
               (f"sum by ({t.by('source')}) (rate({L.REGISTRY_DUPLICATES.name}{one}{rate}))",
                legend(t, "duplicates {{source}}")),
               (f"sum by ({t.by('source')}) (rate({L.REGISTRY_EVENTS.name}{one}{rate}))",
                legend(t, "events {{source}}"))),
              "reqps", NEUTRAL, 12,
              "Notification events accepted, redelivered (de-duplicated) and refused."),
        Panel("timeseries", "Registry notification queue",
              ((f"{L.REGISTRY_NOTIFICATIONS_PENDING.name}{one}",
                legend(t, "{{registry}} {{endpoint}}")),),
              "none", (("green", None), ("orange", 100)), 12,
              "Events the registry has queued for an endpoint and not delivered yet: a growing "
              "queue means cachewatch is not receiving them."),
        *replication_bundle.panels(t, t.of(RegistryThresholds).replication_stale),
    ]


def variables(t: Thresholds) -> tuple[tuple[str, str], ...]:
    """The repositories pulled in the selected fleet."""
    return (("repository",
             f"label_values({L.REGISTRY_IMAGE_PULLS.name}{fleet(t)}, repository)"),)


DASHBOARD = DashboardSpec("registry", "cachewatch-registry", "cachewatch: registry", panels,
                          variables)


def _pull_through_alert(t: Thresholds) -> dict[str, Any]:
    own = t.of(RegistryThresholds)
    return alert(
        "RegistryPullThroughHitRateLow",
        f'{HIT_RATIO}{{layer="registry"}} < {own.registry_hit_rate}\n'
        f"and on ({t.by('layer', 'cache')}) {TOTAL} > {t.min_lookups_per_second / 10}",
        own.registry_for, "warning",
        f"Pull-through cache {{{{ $labels.cache }}}} hit rate below "
        f"{own.registry_hit_rate:.0%}",
        "The pull-through cache {{ $labels.cache }} served "
        "{{ $value | humanizePercentage }} of requests from its own storage.",
        PanelLink(DASHBOARD.uid, "Pull-through cache hit rate"), t, layer="registry")


def alerts(t: Thresholds) -> list[dict[str, Any]]:
    """A pull-through cache going upstream for what it should serve itself; replication to a
    destination failing, or not succeeding for too long."""
    own = t.of(RegistryThresholds)
    return [_pull_through_alert(t),
            replication_bundle.failing_alert(t, own.replication_window,
                                             own.replication_failing_for, DASHBOARD.uid),
            replication_bundle.stale_alert(t, own.replication_stale, DASHBOARD.uid)]


def _pull_through_case(t: Thresholds) -> dict[str, Any]:
    rule, own = _pull_through_alert(t), t.of(RegistryThresholds)
    hold = seconds(own.registry_for) // 60
    minutes = hold + 30
    bad, good = own.registry_hit_rate / 2, (1 + own.registry_hit_rate) / 2
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
    """A cold mirror alerts once ``for`` has passed; warm, idle and trickling ones do not.
    A failed replication alerts while its window holds it; a stale destination alerts, a
    fresh one of another namespace does not."""
    own = t.of(RegistryThresholds)
    return [_pull_through_case(t),
            replication_bundle.failing_case(t, own.replication_window,
                                            own.replication_failing_for, DASHBOARD.uid),
            replication_bundle.stale_case(t, own.replication_stale, DASHBOARD.uid)]


def goals(t: Thresholds) -> tuple[Goal, ...]:
    """Judged as RegistryPullThroughHitRateLow does (its own goal, a tenth of the traffic)."""
    return (generic(t, "registry", DASHBOARD.uid, variable="",
                    hit_rate=t.of(RegistryThresholds).registry_hit_rate,
                    min_lookups=t.min_lookups_per_second / 10,
                    panel="Pull-through cache hit rate"),)


PART = BundlePart(
    goals=goals,
    targets="registries",
    dashboard=DASHBOARD, alert_rules=alerts, alert_tests=tests,
    rejections=Rejections(
        L.REGISTRY_REJECTED.name, "registry", position=0,
        # a refusal every minute from minute 6 to 25: 5 in the last 5 minutes at minute 20
        test_series=(('source="distribution",reason="malformed_json"', "0x5 1+1x19 20x15"),),
        test_firing=(("malformed_json", "5"),)))
