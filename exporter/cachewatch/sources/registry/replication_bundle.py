"""Harbor replication in the registry's bundle: its alerts, their promtool cases and its row.

RegistryReplicationFailing: an execution that ended failed, or an artifact that failed (from
webhooks an execution is counted at its first finished task, so a later task's failure shows in
the artifacts), within the window. RegistryReplicationStale: no successful replication to a
destination for longer than ``replication_stale`` (twice a 30-minute schedule by default).
Both keep the fleet's identity labels, so two clusters' Harbors replicating to the same edge
are two alerts.
"""

from __future__ import annotations

from typing import Any

from ...bundle.alerting import PanelLink, alert
from ...bundle.panels import NEUTRAL, Panel, fleet, legend
from ...bundle.promtool import counter, expected
from ...bundle.thresholds import Thresholds, seconds
from . import contract

EXECUTIONS = contract.REGISTRY_REPLICATION_EXECUTIONS.name
ARTIFACTS = contract.REGISTRY_REPLICATION_ARTIFACTS.name
LAST_SUCCESS = contract.REGISTRY_REPLICATION_LAST_SUCCESS.name
DURATION = contract.REGISTRY_REPLICATION_DURATION.name


def panels(t: Thresholds, stale: str) -> list[Panel]:
    """Executions by status, how long since each destination last got a success, durations."""
    one, rate = fleet(t), "[$__rate_interval]"
    return [
        Panel("timeseries", "Replication executions (per hour)",
              ((f"sum by ({t.by('destination', 'status')}) "
                f"(rate({EXECUTIONS}{one}{rate})) * 3600",
                legend(t, "{{destination}} {{status}}")),), "none", NEUTRAL, 8,
              "Harbor replication executions ended per hour, by destination and final "
              "status; failed ones fire RegistryReplicationFailing."),
        Panel("timeseries", "Time since last successful replication",
              ((f"time() - max by ({t.by('registry', 'destination')}) ({LAST_SUCCESS}{one})",
                legend(t, "{{registry}} → {{destination}}")),),
              "s", (("green", None), ("red", float(seconds(stale)))), 8,
              f"Seconds since each destination last received a successful replication; the "
              f"line ({stale}) is where RegistryReplicationStale fires."),
        Panel("timeseries", "Replication duration (P90)",
              ((f"histogram_quantile(0.9, sum by ({t.by('destination', 'le')}) "
                f"(rate({DURATION}_bucket{one}{rate})))", legend(t, "{{destination}}")),),
              "s", NEUTRAL, 8,
              "How long executions took, start to end (from Harbor's API when polling is "
              "on), 90th percentile per destination."),
    ]


def failing_alert(t: Thresholds, window: str, hold: str, uid: str) -> dict[str, Any]:
    by = t.by("registry", "destination")
    return alert(
        "RegistryReplicationFailing",
        f'sum by ({by}) (increase({EXECUTIONS}{{status="failed"}}[{window}])) > 0\n'
        f'or sum by ({by}) (increase({ARTIFACTS}{{result="failed"}}[{window}])) > 0',
        hold, "warning",
        "Replication from {{ $labels.registry }} to {{ $labels.destination }} is failing",
        f"{{{{ $value | humanize }}}} replication executions or artifacts from "
        f"{{{{ $labels.registry }}}} to {{{{ $labels.destination }}}} failed in the last "
        f"{window}: the edge misses what it should hold. Harbor's replication page has the "
        "task logs.", PanelLink(uid, "Replication executions (per hour)"), t)


def stale_alert(t: Thresholds, stale: str, uid: str) -> dict[str, Any]:
    by = t.by("registry", "destination")
    return alert(
        "RegistryReplicationStale",
        f"time() - max by ({by}) ({LAST_SUCCESS}) > {seconds(stale)}",
        "5m", "warning",
        "No successful replication to {{ $labels.destination }} for "
        f"{stale}",
        "The last successful replication from {{ $labels.registry }} to "
        "{{ $labels.destination }} was {{ $value | humanizeDuration }} ago: the edge serves "
        "stale images. Check that the policy is enabled and its schedule runs.",
        PanelLink(uid, "Time since last successful replication"), t)


def _identity(t: Thresholds, team: str) -> dict[str, str]:
    """A fleet member's identity labels: ``team`` is its namespace, or whichever identity label
    tells members apart when the user's labels have no namespace (as the core's cases do)."""
    apart = "namespace" if "namespace" in t.identity_labels else t.identity_labels[0]
    return {label: team if label == apart else "fleet" for label in t.identity_labels}


def _series(t: Thresholds, team: str) -> str:
    return ",".join(f'{k}="{v}"' for k, v in
                    (_identity(t, team) | {"registry": "harbor", "destination": "edge"}).items())


def _humanize_duration(value: int) -> str:
    """Prometheus' humanizeDuration for whole seconds of a minute or more."""
    days, rest = divmod(value, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m")]
    first = next(i for i, (amount, _) in enumerate(parts) if amount)
    return " ".join(f"{amount}{unit}" for amount, unit in parts[first:]) + f" {secs}s"


def failing_case(t: Thresholds, window: str, hold: str, uid: str) -> dict[str, Any]:
    """One failed execution at minute 11 for team-a's edge: fires while the window holds it
    (once ``for`` has passed) and not after; team-b's same destination never fails."""
    rule = failing_alert(t, window, hold, uid)
    minutes = seconds(window) // 60
    end = minutes + 40
    series = []
    for team, failed in (("team-a", f"0x10 1x{end - 10}"), ("team-b", f"0x{end}")):
        labels = _series(t, team)
        series += [
            {"series": f'{EXECUTIONS}{{{labels},trigger="scheduled",status="failed"}}',
             "values": failed},
            {"series": f'{EXECUTIONS}{{{labels},trigger="scheduled",status="succeeded"}}',
             "values": counter(1 / 1800, end)},
            {"series": f'{ARTIFACTS}{{{labels},result="succeeded"}}',
             "values": counter(10 / 1800, end)},
        ]
    firing = _identity(t, "team-a") | {"registry": "harbor", "destination": "edge"}
    at = minutes + 5  # the failure well inside the window, ``for`` passed (hold < window)
    # a window wholly inside the series holds its samples at both ends: exactly 1
    value = "1"
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": "9m", "alertname": "RegistryReplicationFailing", "exp_alerts": []},
            {"eval_time": f"{at}m", "alertname": "RegistryReplicationFailing",
             "exp_alerts": [expected(rule, firing, value)]},
            {"eval_time": f"{end - 5}m", "alertname": "RegistryReplicationFailing",
             "exp_alerts": []},
        ],
    }


def stale_case(t: Thresholds, stale: str, uid: str) -> dict[str, Any]:
    """Team-a's edge last succeeded at minute 0, team-b's every 30 minutes: only team-a's
    fires, once ``stale`` and the alert's ``for`` have passed."""
    rule = stale_alert(t, stale, uid)
    limit = seconds(stale) // 60
    end = limit + 30
    every = max(1, min(30, limit // 2))  # team-b's schedule, well inside the limit
    fresh = " ".join(str(60 * every * (m // every)) for m in range(end + 1))
    series = [
        {"series": f"{LAST_SUCCESS}{{{_series(t, 'team-a')}}}", "values": f"0x{end}"},
        {"series": f"{LAST_SUCCESS}{{{_series(t, 'team-b')}}}", "values": fresh},
    ]
    firing = _identity(t, "team-a") | {"registry": "harbor", "destination": "edge"}
    at = limit + 10
    value = _humanize_duration(at * 60)
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": f"{limit - 1}m", "alertname": "RegistryReplicationStale",
             "exp_alerts": []},
            {"eval_time": f"{at}m", "alertname": "RegistryReplicationStale",
             "exp_alerts": [expected(rule, firing, value)]},
        ],
    }
