"""Prometheus Operator resources: the rules as a PrometheusRule and the scrape as a PodMonitor.

kube-prometheus-stack's Prometheus selects these by a label (``release: <release name>``
unless its ``*SelectorNilUsesHelmValues`` are turned off): ``Thresholds.operator_selector``
puts it on both. The PodMonitor sets the labels of ``cachewatch_selector`` on every target, so
``up{job="cachewatch"}`` (CachewatchDown, CachewatchAbsent) finds exactly these pods; the
operator would otherwise name the job ``<namespace>/<podmonitor>``.
"""

from __future__ import annotations

from typing import Any

from .thresholds import Thresholds

PART_OF = {"app.kubernetes.io/part-of": "cachewatch"}


def _metadata(t: Thresholds) -> dict[str, Any]:
    return {"name": "cachewatch", "labels": {**PART_OF, **dict(t.operator_selector)}}


def prometheus_rule(t: Thresholds, rules_document: dict[str, Any]) -> dict[str, Any]:
    """The same groups as ``alerts/cachewatch-rules.yml``."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": _metadata(t), "spec": rules_document}


def pod_monitor(t: Thresholds) -> dict[str, Any]:
    """Scrape every cachewatch container (sidecars and receivers) on its ``metrics`` port."""
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
        "metadata": _metadata(t),
        "spec": {
            "selector": {"matchLabels": dict(PART_OF)},
            "podMetricsEndpoints": [{
                "port": "metrics", "path": "/metrics", "interval": "30s",
                "relabelings": [{"targetLabel": label, "replacement": value, "action": "replace"}
                                for label, value in t.cachewatch_labels.items()],
            }],
        },
    }
