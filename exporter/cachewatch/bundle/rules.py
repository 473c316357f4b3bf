"""Prometheus recording and alerting rules: the core's, with every source part's in place.

Recording rules follow ``level:metric:operation``; every ratio is guarded so that no traffic
gives no series (never NaN) and low traffic gives no alert. Metric names come from
``contract``, so a renamed metric changes the rules (and breaks their unit tests) instead of
leaving a silent alert behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..metrics import contract
from ..sources import layers
from . import overview
from .alerting import PanelLink, alert
from .goals import Goal
from .part import BundlePart, Rejections
from .parts import PARTS
from .series import BY_RESULT, HIT_RATIO, OBSERVATIONS, P99, TOTAL
from .thresholds import Thresholds

LOOKUPS = contract.CACHE_LOOKUPS.name
LATENCY = contract.CACHE_LATENCY.name


def recording_rules(t: Thresholds, parts: Sequence[BundlePart] = PARTS) -> list[dict[str, Any]]:
    """The series dashboards and alerts read; parts feed the lookups (Micrometer's
    cache_gets_total maps in there) before the ratios are taken, then add their own. Every
    aggregation keeps the identity labels: a cache is (cluster, namespace, job, layer, cache),
    and the pods of one job that report it are summed."""
    return [
        {"record": BY_RESULT,
         "expr": f"sum by ({t.by('layer', 'cache', 'result')}) (rate({LOOKUPS}[5m]))",
         "labels": {"source": "cachewatch"}},
        *(rule for part in parts for rule in part.lookup_feeds(t)),
        {"record": TOTAL, "expr": f"sum by ({t.by('layer', 'cache')}) ({BY_RESULT})"},
        {"record": HIT_RATIO,
         "expr": f'sum by ({t.by("layer", "cache")}) ({BY_RESULT}{{result="hit"}}) '
                 f"/ ({TOTAL} > 0)"},
        {"record": OBSERVATIONS,
         "expr": f"sum by ({t.by('layer', 'cache')}) (rate({LATENCY}_count[5m]))"},
        {"record": P99,
         "expr": f"histogram_quantile(0.99, sum by ({t.by('layer', 'cache', 'le')}) "
                 f"(rate({LATENCY}_bucket[5m])))\n"
                 f"and on ({t.by('layer', 'cache')}) ({OBSERVATIONS} > 0)"},
        *(rule for part in parts for rule in part.recording_rules(t)),
    ]


def generic_layers() -> list[str]:
    """The layers the core's cache alerts cover: every registered layer that does not say it has
    a rule of its own (``source.Layer.generic_alerts``)."""
    return [layer.name for layer in layers() if layer.generic_alerts]


def _on_layer(goals: Sequence[Goal], panel: str, fallback: PanelLink) -> PanelLink:
    """``fallback`` (an overview panel), sending each layer the generic alerts cover to its own
    dashboard's ``panel`` (a ``Goal`` field naming it) where it has one."""
    covered = generic_layers()
    return PanelLink(fallback.dashboard, fallback.panel, fallback.variables, by_layer=tuple(
        (goal.layer, PanelLink(goal.dashboard, getattr(goal, panel),
                               ((goal.variable, "cache"),) if goal.variable else ()))
        for goal in goals if goal.layer in covered and getattr(goal, panel)))


def cache_alerts(t: Thresholds, parts: Sequence[BundlePart] = PARTS) -> list[dict[str, Any]]:
    """Hit rate and client-observed latency of the caches behind the shared lookup series;
    each links to its layer's dashboard."""
    goals = [goal for part in parts for goal in part.goals(t)]
    chosen = (("layer", "layer"), ("cache", "cache"))
    covered = "|".join(generic_layers())
    pct = f"{t.hit_rate:.0%}"
    ms = f"{t.p99_seconds * 1000:g} ms"
    return [
        alert(
            "CacheHitRateLow",
            f'{HIT_RATIO}{{layer=~"{covered}"}} < {t.hit_rate}\n'
            f"and on ({t.by('layer', 'cache')}) {TOTAL} > {t.min_lookups_per_second}",
            t.hit_rate_for, "warning",
            f"Cache {{{{ $labels.cache }}}} hit rate below {pct}",
            f"The {{{{ $labels.layer }}}} cache {{{{ $labels.cache }}}} served "
            f"{{{{ $value | humanizePercentage }}}} of lookups from cache over 5 minutes "
            f"(target {pct}).", _on_layer(goals, "panel", PanelLink(
                overview.UID, "Caches below hit-rate goal", chosen)), t),
        alert(
            "CacheLatencyP99High",
            f"{P99} > {t.p99_seconds}\n"
            f"and on ({t.by('layer', 'cache')}) {OBSERVATIONS} > "
            f"{t.min_latency_observations_per_second}",
            t.p99_for, "warning",
            f"Cache {{{{ $labels.cache }}}} P99 latency above {ms}",
            f"P99 of {{{{ $labels.layer }}}} cache {{{{ $labels.cache }}}} as its "
            f"clients see it is {{{{ $value | humanizeDuration }}}} (target {ms}).",
            _on_layer(goals, "latency_panel", PanelLink(
                overview.UID, "P99 latency (client-observed)", chosen)), t),
    ]


def rejections(parts: Sequence[BundlePart]) -> list[Rejections]:
    """The receivers' refusal counters, in their place in CachewatchWebhooksRejected."""
    return sorted((p.rejections for p in parts if p.rejections), key=lambda r: r.position)


def _refused(r: Rejections, t: Thresholds) -> str:
    benign = f', reason!="{r.benign_reason}"' if r.benign_reason else ""
    return (f"label_replace(sum by ({t.by('reason')}) (increase({r.metric}{{reason!=\"\""
            f"{benign}}}[{t.rejected_window}])) > 0, "
            f'"endpoint", "{r.endpoint}", "", "")')


def exporter_alerts(t: Thresholds) -> list[dict[str, Any]]:
    """cachewatch itself: scraped but down, or gone from service discovery altogether."""
    up = f"up{{{t.cachewatch_selector}}}"
    return [
        alert(
            "CachewatchDown",
            f"{up} == 0",
            t.down_for, "warning",
            "cachewatch {{ $labels.instance }} is down",
            f"Prometheus could not scrape cachewatch at {{{{ $labels.instance }}}} "
            f"for {t.down_for}: the caches it reads are not measured, and their alerts cannot "
            "fire.", PanelLink(overview.UID, "Exporters up per instance"), t),
        alert(
            "CachewatchAbsent",
            f"absent({up})",
            t.absent_for, "warning",
            "No cachewatch target is scraped",
            f"Prometheus has had no target matching {t.cachewatch_selector} for {t.absent_for}"
            ": cachewatch was removed or its service discovery (PodMonitor, scrape config) "
            "no longer finds it. No cache alert can fire.",
            PanelLink(overview.UID, "Exporters up per instance", identity=False), t),
    ]


def health_alerts(t: Thresholds, parts: Sequence[BundlePart]) -> list[dict[str, Any]]:
    """cachewatch's own health: the exporter itself, targets it cannot read, collectors failing,
    a state store that cannot take what is received and, if any part receives data, data
    refused."""
    refused = rejections(parts)
    return [
        *exporter_alerts(t),
        alert(
            "CachewatchTargetDown",
            # `cache` = the target's name, so Alertmanager can inhibit that cache's alerts
            f'label_replace({contract.COLLECTOR_UP.name} == 0, "cache", "$1", "target", "(.+)")',
            t.down_for, "warning",
            "cachewatch cannot read {{ $labels.target }} ({{ $labels.collector }})",
            f"The {{{{ $labels.collector }}}} collector has not read "
            f"{{{{ $labels.target }}}} for {t.down_for}; {contract.COLLECTOR_ERRORS.name} says "
            "why.", PanelLink(overview.UID, "Targets cachewatch reads"), t),
        alert(
            "CachewatchCollectorFailing",
            f"sum by ({t.by('collector', 'target', 'reason')}) "
            f"(increase({contract.COLLECTOR_ERRORS.name}[{t.errors_window}])) > {t.max_errors}",
            t.errors_for, "warning",
            "cachewatch {{ $labels.collector }} keeps failing on {{ $labels.target }}",
            f"{{{{ $value | humanize }}}} {{{{ $labels.reason }}}} errors reading "
            f"{{{{ $labels.target }}}} in {t.errors_window}, every {t.errors_window} "
            f"for {t.errors_for}.",
            PanelLink(overview.UID, f"Collector errors ({t.errors_window})"), t),
        alert(
            "CachewatchStateDown",
            f"min by ({t.by('instance')}) ({contract.STATE_UP.name}) == 0", "2m", "critical",
            "cachewatch cannot store what it receives",
            f"The state store ({contract.STATE_INFO.name} says which) fails or is too slow: "
            "webhooks, builds and pushes get 503 and their senders retry; "
            f"{contract.STATE_ERRORS.name} says what fails.",
            PanelLink(overview.UID, "State store up"), t),
        *([alert(
            "CachewatchWebhooksRejected",
            "\nor\n".join(_refused(r, t) for r in refused), t.rejected_for, "warning",
            "cachewatch refuses {{ $labels.endpoint }} requests ({{ $labels.reason }})",
            f"{{{{ $value | humanize }}}} requests to the {{{{ $labels.endpoint }}}} endpoint"
            f" were refused in {t.rejected_window} for {{{{ $labels.reason }}}}, "
            f"and refusals have gone on for {t.rejected_for}: their data is not counted.",
            PanelLink(overview.UID, f"Refusals per endpoint ({t.rejected_window})"), t)]
          if refused else []),
    ]


def alert_rules(t: Thresholds, parts: Sequence[BundlePart] = PARTS) -> list[dict[str, Any]]:
    """At least one alert a user of each layer would expect, plus the exporter's own health."""
    return [*cache_alerts(t, parts), *(rule for part in parts for rule in part.alert_rules(t)),
            *health_alerts(t, parts)]


def rules_document(t: Thresholds, parts: Sequence[BundlePart] = PARTS) -> dict[str, Any]:
    """The rules file: one recording group, one alerting group."""
    return {"groups": [
        {"name": "cachewatch.recording", "rules": recording_rules(t, parts)},
        {"name": "cachewatch.alerts", "rules": alert_rules(t, parts)},
    ]}
