"""Prometheus recording and alerting rules, generated from the metric contract.

Recording rules follow ``level:metric:operation``; every ratio is guarded so that no traffic
gives no series (never NaN) and low traffic gives no alert. Metric names come from
``contract``, so a renamed metric changes the rules (and breaks their unit tests) instead of
leaving a silent alert behind.
"""

from __future__ import annotations

from typing import Any

import yaml

from .. import contract
from .thresholds import Thresholds

LOOKUPS = contract.CACHE_LOOKUPS.name
LATENCY = contract.CACHE_LATENCY.name
# recorded series
BY_RESULT = "layer_cache_result:cachewatch_cache_lookups:rate5m"
TOTAL = "layer_cache:cachewatch_cache_lookups:rate5m"
HIT_RATIO = "layer_cache:cachewatch_cache_hit_ratio:rate5m"
P99 = "layer_cache:cachewatch_cache_latency_seconds:p99_5m"
OBSERVATIONS = "layer_cache:cachewatch_cache_latency_observations:rate5m"
BUILD_RATIO = "image:cachewatch_docker_build_hit_ratio:increase"
# Commands slow by nature, or run by operators, left out of the server-side P99 alert.
ADMIN_COMMANDS = "info|config.*|client.*|slowlog.*|latency.*|debug.*|save|bgsave|flush.*|keys|scan"

DASHBOARDS = {
    "overview": "cachewatch-overview",
    "builds": "cachewatch-docker-builds",
    "registry": "cachewatch-registry",
    "redis": "cachewatch-redis",
    "app": "cachewatch-app-caches",
}


def recording_rules(t: Thresholds) -> list[dict[str, Any]]:
    """The series dashboards and alerts read; Micrometer's cache_gets_total maps in here."""
    builds = contract.DOCKER_BUILD_STEPS.name
    return [
        {"record": BY_RESULT,
         "expr": f"sum by (layer, cache, result) (rate({LOOKUPS}[5m]))",
         "labels": {"source": "cachewatch"}},
        # Spring apps scraped directly: Micrometer's cache.gets becomes the same series.
        {"record": BY_RESULT,
         "expr": 'label_replace(sum by (cache, result) (rate(cache_gets_total{result=~"hit|miss"}'
                 '[5m])), "layer", "app", "", "")',
         "labels": {"source": "micrometer"}},
        {"record": TOTAL, "expr": f"sum by (layer, cache) ({BY_RESULT})"},
        {"record": HIT_RATIO,
         "expr": f'sum by (layer, cache) ({BY_RESULT}{{result="hit"}}) / ({TOTAL} > 0)'},
        {"record": OBSERVATIONS,
         "expr": f"sum by (layer, cache) (rate({LATENCY}_count[5m]))"},
        {"record": P99,
         "expr": f"histogram_quantile(0.99, sum by (layer, cache, le) "
                 f"(rate({LATENCY}_bucket[5m]))) and on (layer, cache) ({OBSERVATIONS} > 0)"},
        {"record": BUILD_RATIO + t.build_window,
         "expr": f'sum by (image) (increase({builds}{{result="hit"}}[{t.build_window}])) / '
                 f"(sum by (image) (increase({builds}[{t.build_window}])) > 0)"},
    ]


def _alert(name: str, expr: str, duration: str, severity: str, summary: str, description: str,
           dashboard: str, t: Thresholds, layer: str = "") -> dict[str, Any]:
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
            "dashboard_url": f"{t.grafana_url}/d/{DASHBOARDS[dashboard]}",
        },
    }


def alert_rules(t: Thresholds) -> list[dict[str, Any]]:
    """At least one alert a user of each layer would expect, plus the exporter's own health."""
    pct = f"{t.hit_rate:.0%}"
    ms = f"{t.p99_seconds * 1000:g} ms"
    rejected = [
        (contract.REGISTRY_REJECTED.name, "registry", ""),
        (contract.BUILD_INGEST_REJECTED.name, "builds", ', reason!="duplicate"'),
        (contract.APP_PUSH_REJECTED.name, "caches", ""),
    ]
    rejections = "\nor\n".join(
        f'label_replace(sum by (reason) (increase({metric}{{reason!=""{extra}}}[10m])) > 0, '
        f'"endpoint", "{endpoint}", "", "")' for metric, endpoint, extra in rejected)
    return [
        _alert(
            "CacheHitRateLow",
            f'{HIT_RATIO}{{layer=~"redis|app"}} < {t.hit_rate}\n'
            f"and on (layer, cache) {TOTAL} > {t.min_lookups_per_second}",
            t.hit_rate_for, "warning",
            f"Cache {{{{ $labels.cache }}}} hit rate below {pct}",
            f"The {{{{ $labels.layer }}}} cache {{{{ $labels.cache }}}} served "
            f"{{{{ $value | humanizePercentage }}}} of lookups from cache over 5 minutes "
            f"(target {pct}).", "overview", t),
        _alert(
            "CacheLatencyP99High",
            f"{P99} > {t.p99_seconds}\n"
            f"and on (layer, cache) {OBSERVATIONS} > {t.min_latency_observations_per_second}",
            t.p99_for, "warning",
            f"Cache {{{{ $labels.cache }}}} P99 latency above {ms}",
            f"P99 of {{{{ $labels.layer }}}} cache {{{{ $labels.cache }}}} as its clients see it"
            f" is {{{{ $value | humanizeDuration }}}} (target {ms}).", "overview", t),
        _alert(
            "RedisServerLatencyP99High",
            f'max by (cache, command) ({contract.REDIS_SERVER_LATENCY.name}'
            f'{{quantile="0.99", command!~"{ADMIN_COMMANDS}"}}) > {t.p99_seconds}\n'
            f"and on (cache, command) sum by (cache, command) "
            f"(rate({contract.REDIS_SERVER_LATENCY.name}_count[5m])) > "
            f"{t.min_lookups_per_second}",
            t.p99_for, "warning",
            f"Redis {{{{ $labels.cache }}}}: {{{{ $labels.command }}}} P99 above {ms} "
            "inside the server",
            f"Redis {{{{ $labels.cache }}}} reports a server-side P99 of "
            f"{{{{ $value | humanizeDuration }}}} for {{{{ $labels.command }}}} (target {ms}); "
            "the network is not in this number.", "redis", t, layer="redis"),
        _alert(
            "DockerBuildCacheHitRateLow",
            f"{BUILD_RATIO}{t.build_window} < {t.build_hit_rate}\n"
            f"and on (image) sum by (image) (increase({contract.DOCKER_BUILDS.name}"
            f"[{t.build_window}])) >= {t.min_builds}",
            "0m", "warning",
            f"Builds of {{{{ $labels.image }}}} reuse under {t.build_hit_rate:.0%} of layers",
            f"Over {t.build_window}, builds of {{{{ $labels.image }}}} took "
            f"{{{{ $value | humanizePercentage }}}} of their steps from the layer cache; the "
            "Docker builds dashboard names the instruction that keeps busting it.",
            "builds", t, layer="docker_build"),
        _alert(
            "RegistryPullThroughHitRateLow",
            f'{HIT_RATIO}{{layer="registry"}} < {t.registry_hit_rate}\n'
            f"and on (layer, cache) {TOTAL} > {t.min_lookups_per_second / 10}",
            t.registry_for, "warning",
            f"Pull-through cache {{{{ $labels.cache }}}} hit rate below "
            f"{t.registry_hit_rate:.0%}",
            "The pull-through cache {{ $labels.cache }} served "
            "{{ $value | humanizePercentage }} of requests from its own storage.",
            "registry", t, layer="registry"),
        _alert(
            "CachewatchTargetDown",
            # `cache` = the target's name, so Alertmanager can inhibit that cache's alerts
            f'label_replace({contract.COLLECTOR_UP.name} == 0, "cache", "$1", "target", "(.+)")',
            t.down_for, "critical",
            "cachewatch cannot read {{ $labels.target }} ({{ $labels.collector }})",
            "The {{ $labels.collector }} collector has not read {{ $labels.target }} for "
            f"{t.down_for}; cachewatch_collector_errors_total says why.", "overview", t),
        _alert(
            "CachewatchCollectorFailing",
            f"sum by (collector, target, reason) (increase({contract.COLLECTOR_ERRORS.name}"
            f"[{t.errors_window}])) > {t.max_errors}",
            "0m", "warning",
            "cachewatch {{ $labels.collector }} keeps failing on {{ $labels.target }}",
            f"{{{{ $value | humanize }}}} {{{{ $labels.reason }}}} errors reading "
            f"{{{{ $labels.target }}}} in {t.errors_window}.", "overview", t),
        _alert(
            "CachewatchWebhooksRejected", rejections, "0m", "warning",
            "cachewatch refuses {{ $labels.endpoint }} requests ({{ $labels.reason }})",
            "{{ $value | humanize }} requests to the {{ $labels.endpoint }} endpoint were "
            "refused in 10 minutes for {{ $labels.reason }}: their data is not counted.",
            "overview", t),
    ]


def rules_document(t: Thresholds) -> dict[str, Any]:
    return {"groups": [
        {"name": "cachewatch.recording", "rules": recording_rules(t)},
        {"name": "cachewatch.alerts", "rules": alert_rules(t)},
    ]}


def render(document: dict[str, Any]) -> str:
    """YAML with a stable layout: regenerating gives byte-identical files."""
    return yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)
