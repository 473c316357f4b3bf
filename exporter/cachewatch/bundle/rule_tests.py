"""``promtool test rules`` cases for every alert: fires, does not fire, no traffic, low traffic,
recovery; generated with the same thresholds as the rules, so a user's own bundle is tested too.

The core's cases cover the core's alerts; each source part brings the cases of its own alerts
and recording rules, and its receiver's refusals join the health case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import contract
from .part import BundlePart
from .promtool import counter, duration, expected, lookups, number, two_phase
from .rules import cache_alerts, health_alerts, rejections
from .series import HIT_RATIO
from .thresholds import Thresholds, seconds


def _by_name(rules: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules}


def _hit_rate_case(t: Thresholds) -> dict[str, Any]:
    rule = _by_name(cache_alerts(t))["CacheHitRateLow"]
    low = t.min_lookups_per_second
    bad = t.hit_rate / 2  # well under the target
    good = (1 + t.hit_rate) / 2  # well over it
    busy = low * 4  # lookups/s, comfortably above the low-traffic guard
    minutes = 40 + seconds(t.hit_rate_for) // 60
    series = [
        *lookups("redis", "bad", counter(busy * bad, minutes),
                 counter(busy * (1 - bad), minutes)),
        *lookups("app", "good", counter(busy * good, minutes),
                 counter(busy * (1 - good), minutes)),
        *lookups("redis", "quiet", "0x60", "0x60"),
        *lookups("redis", "sparse", counter(low / 4 * bad, minutes),
                 counter(low / 4 * (1 - bad), minutes)),
        *lookups("app", "recovering", two_phase(busy * bad, busy * good, 20, minutes),
                 two_phase(busy * (1 - bad), busy * (1 - good), 20, minutes)),
    ]
    firing_at = f"{20 - 1}m"  # bad since the start: past `for` by then
    after = f"{20 + 5 + seconds(t.hit_rate_for) // 60 + 2}m"
    value = f"{bad * 100:.4g}%"
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": firing_at, "alertname": "CacheHitRateLow", "exp_alerts": [
                expected(rule, {"layer": "app", "cache": "recovering"}, value),
                expected(rule, {"layer": "redis", "cache": "bad"}, value)]},
            {"eval_time": after, "alertname": "CacheHitRateLow", "exp_alerts": [
                expected(rule, {"layer": "redis", "cache": "bad"}, value)]},
        ],
        "promql_expr_test": [
            # no traffic: no ratio at all (never NaN), hence no alert
            {"expr": f'{HIT_RATIO}{{cache="quiet"}}', "eval_time": after, "exp_samples": []},
        ],
    }


def _latency_case(t: Thresholds) -> dict[str, Any]:
    rule = _by_name(cache_alerts(t))["CacheLatencyP99High"]
    edges = [*contract.LATENCY_BUCKETS, "+Inf"]
    slow_le = next(e for e in contract.LATENCY_BUCKETS if e > t.p99_seconds * 1.5)
    rate = max(1.0, t.min_latency_observations_per_second * 10)
    minutes = 30 + seconds(t.p99_for) // 60

    def histogram(cache: str, all_under: float | None, per_second: float) -> list[dict]:
        rows = []
        for edge in edges:
            inside = all_under is None or (edge != "+Inf" and edge < all_under)
            counts = "0x60" if (inside and all_under is not None) else counter(per_second,
                                                                              minutes)
            le = edge if edge == "+Inf" else repr(float(edge))
            rows.append({"series": f'{contract.CACHE_LATENCY.name}_bucket{{layer="redis",'
                                   f'cache="{cache}",op="ping",le="{le}"}}', "values": counts})
        rows.append({"series": f'{contract.CACHE_LATENCY.name}_count{{layer="redis",'
                               f'cache="{cache}",op="ping"}}',
                     "values": counter(per_second, minutes)})
        return rows

    lower = max(e for e in contract.LATENCY_BUCKETS if e < slow_le)
    p99 = lower + (slow_le - lower) * 0.99  # histogram_quantile interpolates in the bucket
    series = [
        *histogram("slow", slow_le, rate),  # every observation in (lower, slow_le]
        *histogram("fast", None, rate),  # all in the first bucket
        *histogram("sparse", slow_le, t.min_latency_observations_per_second / 4),
    ]
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": f"{minutes - 2}m", "alertname": "CacheLatencyP99High",
             "exp_alerts": [{
                 "exp_labels": {"layer": "redis", "cache": "slow", "severity": "warning"},
                 "exp_annotations": expected(rule, {"layer": "redis", "cache": "slow"},
                                             duration(p99))["exp_annotations"]}]},
        ],
    }


def _refusal_series(parts: Sequence[BundlePart]) -> list[dict[str, str]]:
    return [{"series": f"{r.metric}{{{labels}}}", "values": values}
            for r in rejections(parts) for labels, values in r.test_series]


def _refusal_tests(rules: dict[str, dict[str, Any]],
                   parts: Sequence[BundlePart]) -> list[dict[str, Any]]:
    """Refusals alert at minute 8 and are forgotten by minute 29 (if any part receives data)."""
    rule = rules.get("CachewatchWebhooksRejected")
    if rule is None:
        return []
    firing = [expected(rule, {"endpoint": r.endpoint, "reason": reason}, value)
              for r in rejections(parts) for reason, value in r.test_firing]
    return [{"eval_time": "8m", "alertname": rule["alert"], "exp_alerts": firing},
            {"eval_time": "29m", "alertname": rule["alert"], "exp_alerts": []}]


def _health_case(t: Thresholds, parts: Sequence[BundlePart]) -> dict[str, Any]:
    rules = _by_name(health_alerts(t, parts))
    down_rule, failing_rule = rules["CachewatchTargetDown"], rules["CachewatchCollectorFailing"]
    state_rule = rules["CachewatchStateDown"]
    up, errors = contract.COLLECTOR_UP.name, contract.COLLECTOR_ERRORS.name
    state_up = contract.STATE_UP.name
    down = seconds(t.down_for) // 60
    burst = t.max_errors + 2
    return {
        "interval": "1m",
        "input_series": [
            {"series": f'{up}{{collector="redis",target="gone"}}', "values": "0x30"},
            {"series": f'{up}{{collector="redis",target="ok"}}', "values": "1x30"},
            {"series": f'{up}{{collector="redis",target="blip"}}', "values": "1x5 0x2 1x22"},
            {"series": f'{up}{{collector="redis",target="back"}}',
             "values": f"0x{down + 3} 1x{30 - down - 4}"},
            {"series": f'{errors}{{collector="redis_probe",target="flaky",reason="timeout"}}',
             "values": f"0x5 {burst}x25"},
            {"series": f'{errors}{{collector="redis",target="ok",reason="timeout"}}',
             "values": "0x10 1x20"},
            {"series": f'{state_up}{{instance="r1"}}', "values": "1x3 0x9 1x17"},
            {"series": f'{state_up}{{instance="r2"}}', "values": "1x3 0x1 1x25"},  # a blip
            *_refusal_series(parts),
        ],
        "alert_rule_test": [
            {"eval_time": f"{down + 2}m", "alertname": "CachewatchTargetDown", "exp_alerts": [
                expected(down_rule, {"collector": "redis", "target": "back", "cache": "back"},
                         "0"),
                expected(down_rule, {"collector": "redis", "target": "gone", "cache": "gone"},
                         "0")]},
            {"eval_time": "29m", "alertname": "CachewatchTargetDown", "exp_alerts": [
                expected(down_rule, {"collector": "redis", "target": "gone", "cache": "gone"},
                         "0")]},
            {"eval_time": "8m", "alertname": "CachewatchCollectorFailing", "exp_alerts": [
                expected(failing_rule,
                         {"collector": "redis_probe", "target": "flaky", "reason": "timeout"},
                         number(burst))]},
            {"eval_time": "8m", "alertname": "CachewatchStateDown", "exp_alerts": [
                expected(state_rule, {"instance": "r1"}, "0")]},
            {"eval_time": "29m", "alertname": "CachewatchStateDown", "exp_alerts": []},
            *_refusal_tests(rules, parts),
        ],
    }


def document(t: Thresholds, parts: Sequence[BundlePart]) -> dict[str, Any]:
    """The promtool test file (its ``rule_files`` is the generated rules file next to it):
    cases in the order of the alerts they test, then the recording rules' own."""
    return {
        "rule_files": ["cachewatch-rules.yml"],
        "evaluation_interval": "1m",
        "tests": [_hit_rate_case(t), _latency_case(t),
                  *(case for part in parts for case in part.alert_tests(t)),
                  _health_case(t, parts),
                  *(case for part in parts for case in part.recording_tests(t))],
    }
