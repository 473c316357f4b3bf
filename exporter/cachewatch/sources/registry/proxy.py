"""Pull-through cache hit rate, read from the registry's own debug endpoint.

Distribution 2.8 publishes its proxy counters only as expvar JSON at ``/debug/vars`` (key
``registry.proxy``: ``blobs``/``manifests`` with Requests, Hits, Misses, BytesPulled,
BytesPushed); 3.x publishes ``registry_proxy_{requests,hits,misses}_total{type}`` on its
Prometheus endpoint. Both become ``layer="registry"`` lookups.

2.8 counts every request it serves as a "Hit" (Hits == Requests) and each fetch from upstream
as a "Miss", so its hit is Requests - Misses; 3.x counts hits and misses apart. 2.8.2 does not
count blob fetches from upstream at all (its blob Misses and BytesPulled stay 0): its blob hit
rate reads 100%, which is the registry's own number, exported as it is.

The same ``/debug/vars`` shows the notification queue, so a stuck webhook delivery is visible
here too. Only counters are read: the endpoint also echoes notification headers (tokens),
which are never exported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import httpx

from ...collectors.target_collector import TargetCollector
from ...metrics.contract import Families
from ...metrics.labels import safe_label
from ...runtime import Runtime
from . import contract
from .settings import ProxyTarget, RegistryProxySettings

REASONS = ("timeout", "connection", "protocol", "other")
TYPES = {"blobs": "blob", "manifests": "manifest"}
_PROM_LINE = re.compile(
    r'^registry_proxy_(requests|hits|misses|pulled_bytes|bytes_pulled)_total\{([^}]*)\}\s+(\S+)',
    re.MULTILINE)
_TYPE_LABEL = re.compile(r'type="([^"]*)"')


def from_debug_vars(data: dict[str, Any], registry: str) -> Families:
    """Families from a 2.8 ``/debug/vars`` document."""
    out = Families()
    section = data.get("registry")
    if not isinstance(section, dict) or not isinstance(section.get("proxy"), dict):
        raise ValueError("no registry.proxy in /debug/vars: is this registry a pull-through "
                         "cache (proxy.remoteurl)?")
    counts = {}
    for key, kind in TYPES.items():
        stats = section["proxy"].get(key) or {}
        requests, misses = float(stats.get("Requests", 0)), float(stats.get("Misses", 0))
        counts[kind] = (max(0.0, requests - misses), misses,
                        float(stats.get("BytesPulled", 0)), requests)
    _lookups(out, registry, counts)
    notifications = section.get("notifications") or {}
    for endpoint in notifications.get("endpoints") or []:
        metrics = endpoint.get("Metrics") or {}
        name = safe_label(endpoint.get("name") or endpoint.get("Name") or "")
        out.add(contract.REGISTRY_NOTIFICATIONS_PENDING, {"registry": registry,
                                                          "endpoint": name},
                float(metrics.get("Pending", 0)))
        for result, key in (("success", "Successes"), ("failure", "Failures"),
                            ("error", "Errors")):
            out.add(contract.REGISTRY_NOTIFICATIONS,
                    {"registry": registry, "endpoint": name, "result": result},
                    float(metrics.get(key, 0)))
    return out


def from_prometheus(text: str, registry: str) -> Families:
    """Families from a 3.x Prometheus exposition."""
    found: dict[str, dict[str, float]] = {}
    for name, labels, value in _PROM_LINE.findall(text):
        kind_match = _TYPE_LABEL.search(labels)
        kind = safe_label(kind_match.group(1)) if kind_match else "blob"
        found.setdefault(kind, {})[name] = found.get(kind, {}).get(name, 0.0) + float(value)
    if not found:
        raise ValueError("no registry_proxy_* metrics: is this registry a pull-through cache?")
    counts = {kind.rstrip("s"): (v.get("hits", 0.0), v.get("misses", 0.0),
                                 v.get("pulled_bytes", v.get("bytes_pulled", 0.0)),
                                 v.get("requests", v.get("hits", 0.0) + v.get("misses", 0.0)))
              for kind, v in found.items()}
    out = Families()
    _lookups(out, registry, counts)
    return out


def _lookups(out: Families, registry: str,
             counts: dict[str, tuple[float, float, float, float]]) -> None:
    """``counts``: type -> (hits, misses, bytes from upstream, requests)."""
    hits = sum(c[0] for c in counts.values())
    misses = sum(c[1] for c in counts.values())
    core = {"layer": contract.LAYER, "cache": registry}
    out.add(contract.CACHE_LOOKUPS, {**core, "result": "hit"}, hits)
    out.add(contract.CACHE_LOOKUPS, {**core, "result": "miss"}, misses)
    for kind, (kind_hits, kind_misses, pulled, requests) in sorted(counts.items()):
        labels = {"registry": registry, "type": kind}
        out.add(contract.REGISTRY_PROXY_LOOKUPS, {**labels, "result": "hit"}, kind_hits)
        out.add(contract.REGISTRY_PROXY_LOOKUPS, {**labels, "result": "miss"}, kind_misses)
        out.add(contract.REGISTRY_PROXY_REQUESTS, labels, requests)
        out.add(contract.REGISTRY_PROXY_UPSTREAM_BYTES, labels, pulled)


class RegistryProxyCollector(TargetCollector):
    """Each configured registry debug endpoint, read on every scrape."""

    name = "registry_proxy"
    reasons = REASONS

    def __init__(self, targets: Sequence[ProxyTarget], timeout: float, runtime: Runtime) -> None:
        super().__init__(runtime, timeout)
        self._targets = {t.name or t.url: t for t in targets}
        self._http = httpx.Client(timeout=timeout)
        self.health.expect(self.name, self._targets, self.reasons)

    def targets(self) -> Sequence[str]:
        return list(self._targets)

    def read(self, target: str) -> Families:
        base = self._targets[target].url
        response = self._http.get(base + "/debug/vars")
        if response.status_code == 200:
            try:
                return from_debug_vars(response.json(), target)
            except ValueError:
                pass  # a 3.x debug server: try its Prometheus endpoint below
        metrics = self._http.get(base + "/metrics")
        metrics.raise_for_status()
        return from_prometheus(metrics.text, target)

    def classify(self, exc: BaseException) -> tuple[str, str]:
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, httpx.TimeoutException):
            return "timeout", message
        if isinstance(exc, httpx.TransportError):
            return "connection", message
        if isinstance(exc, httpx.HTTPStatusError | ValueError | KeyError):
            return "protocol", message
        return "other", message

    def close(self) -> None:
        self._http.close()


def build(section: RegistryProxySettings, runtime: Runtime) -> RegistryProxyCollector:
    """Pull-through caches listed in ``registry_proxy.targets``."""
    return RegistryProxyCollector(section.targets, section.timeout, runtime)
