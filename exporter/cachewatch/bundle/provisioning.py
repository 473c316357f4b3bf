"""Grafana file provisioning: where the dashboards are loaded from and the Prometheus data source
they (and the Grafana-managed alerts) query."""

from __future__ import annotations

from typing import Any

DASHBOARDS: dict[str, Any] = {
    "apiVersion": 1,
    "providers": [{"name": "cachewatch", "folder": "cachewatch", "type": "file",
                   "disableDeletion": False, "allowUiUpdates": False,
                   "options": {"path": "/var/lib/grafana/dashboards/cachewatch"}}],
}
DATASOURCE: dict[str, Any] = {
    "apiVersion": 1,
    "datasources": [{"name": "Prometheus", "type": "prometheus", "uid": "prometheus",
                     "access": "proxy", "url": "http://prometheus:9090", "isDefault": True}],
}
