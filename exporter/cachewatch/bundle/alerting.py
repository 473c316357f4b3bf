"""The shape every cachewatch alert shares, core or source: the same labels and the same four
annotations (a test checks every alert has them), so routing and runbooks work alike."""

from __future__ import annotations

from typing import Any

from .thresholds import Thresholds


def alert(name: str, expr: str, duration: str, severity: str, summary: str, description: str,
          dashboard_uid: str, t: Thresholds, layer: str = "") -> dict[str, Any]:
    """A Prometheus alerting rule linking to its runbook section and to ``dashboard_uid``."""
    labels = {"severity": severity}
    if layer:
        labels["layer"] = layer
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": labels,
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{t.runbook_url}#{name.lower()}",
            "dashboard_url": f"{t.grafana_url}/d/{dashboard_uid}",
        },
    }

