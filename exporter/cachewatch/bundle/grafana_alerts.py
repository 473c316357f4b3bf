"""Grafana-managed alert rules, in Grafana's file provisioning format, written by our own code
(grafanalib's alerting output is not that format). Same alerts, thresholds and annotations as
the Prometheus rules, for teams that alert from Grafana rather than Alertmanager.

Each rule queries the Prometheus alert expression (A: a series per alerting instance, its value
the ratio or latency), turns every series into 1 (B: a math expression) and fires on B > 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from . import provisioning
from .alerting import panels_of
from .thresholds import seconds

DATASOURCE_UID = provisioning.DATASOURCE["datasources"][0]["uid"]
_VALUE = re.compile(r"\{\{ \$value(?: \| (\w+))? \}\}")


def _grafana_template(text: str) -> str:
    """Prometheus ``{{ $value | fn }}`` -> Grafana's ``{{ fn $values.A.Value }}``."""
    def replace(match: re.Match[str]) -> str:
        function = f"{match.group(1)} " if match.group(1) else ""
        return "{{ " + function + "$values.A.Value }}"

    return _VALUE.sub(replace, text)


def _uid(name: str) -> str:
    return "cw-" + re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()[:36]


def _panel(rule: dict[str, Any]) -> dict[str, str]:
    """The panel Grafana shows the rule's state on: the one its link opens for any layer."""
    uid, pid = panels_of(rule)[-1]
    return {"__dashboardUid__": uid, "__panelId__": str(pid)}


def document(alert_rules: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The provisioning file holding a Grafana rule for each of ``alert_rules``."""
    rules = []
    for rule in alert_rules:
        window = max(600, seconds(rule["for"]) * 2 if rule["for"] != "0m" else 600)
        rules.append({
            "uid": _uid(rule["alert"]),
            "title": rule["alert"],
            "condition": "B",
            "data": [
                {"refId": "A", "relativeTimeRange": {"from": window, "to": 0},
                 "datasourceUid": DATASOURCE_UID,
                 "model": {"refId": "A", "expr": rule["expr"], "instant": True,
                           "intervalMs": 1000, "maxDataPoints": 43200}},
                {"refId": "B", "datasourceUid": "__expr__",
                 "model": {"refId": "B", "type": "math", "expression": "$A * 0 + 1"}},
            ],
            "noDataState": "OK",
            "execErrState": "Error",
            "for": rule["for"],
            "labels": rule["labels"],
            "annotations": {**{k: _grafana_template(v) for k, v in rule["annotations"].items()},
                            **_panel(rule)},
        })
    return {"apiVersion": 1, "groups": [
        {"orgId": 1, "name": "cachewatch", "folder": "cachewatch", "interval": "1m",
         "rules": rules}]}
