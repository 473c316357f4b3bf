"""``promtool test rules`` cases for every alert: fires, does not fire, no traffic, low traffic,
recovery; generated with the same thresholds as the rules, so a user's own bundle is tested too.

The core's cases cover the core's alerts; each source part brings the cases of its own alerts
and recording rules, and its receiver's refusals join the health case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..metrics import contract
from .part import BundlePart
from .promtool import (
    before_for,
    counter,
    duration,
    expected,
    histogram,
    interpolated_p99,
    lookups,
    number,
    two_phase,
)
from .rules import cache_alerts, exporter_alerts, generic_layers, health_alerts, rejections
from .series import HIT_RATIO, TOTAL
from .thresholds import Thresholds, seconds


def _layers() -> tuple[str, str]:
    """Two layers the cache alerts cover, to draw their cases on (the first twice if only one
    is registered); any further covered layer gets a failing cache of its own."""
    covered = generic_layers()
    return covered[0], covered[1 if len(covered) > 1 else 0]


def _by_name(rules: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules}


def _hit_rate_case(t: Thresholds) -> dict[str, Any]:
    rule = _by_name(cache_alerts(t))["CacheHitRateLow"]
    low = t.min_lookups_per_second
    bad = t.hit_rate / 2  # well under the target
    good = (1 + t.hit_rate) / 2  # well over it
    busy = low * 4  # lookups/s, comfortably above the low-traffic guard
    minutes = 40 + seconds(t.hit_rate_for) // 60
    first, second = _layers()
    others = generic_layers()[2:]
    series = [
        *lookups(first, "bad", counter(busy * bad, minutes),
                 counter(busy * (1 - bad), minutes)),
        *lookups(second, "good", counter(busy * good, minutes),
                 counter(busy * (1 - good), minutes)),
        *lookups(first, "quiet", "0x60", "0x60"),
        *lookups(first, "sparse", counter(low / 4 * bad, minutes),
                 counter(low / 4 * (1 - bad), minutes)),
        *lookups(second, "recovering", two_phase(busy * bad, busy * good, 20, minutes),
                 two_phase(busy * (1 - bad), busy * (1 - good), 20, minutes)),
        *(row for layer in others for row in lookups(
            layer, "bad", counter(busy * bad, minutes), counter(busy * (1 - bad), minutes))),
    ]
    firing_at = f"{20 - 1}m"  # bad since the start: past `for` by then
    after = f"{20 + 5 + seconds(t.hit_rate_for) // 60 + 2}m"
    value = f"{bad * 100:.4g}%"
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            before_for(t.hit_rate_for, "CacheHitRateLow"),
            {"eval_time": firing_at, "alertname": "CacheHitRateLow", "exp_alerts": [
                expected(rule, {"layer": second, "cache": "recovering"}, value),
                *(expected(rule, {"layer": layer, "cache": "bad"}, value)
                  for layer in (first, *others))]},
            {"eval_time": after, "alertname": "CacheHitRateLow", "exp_alerts": [
                expected(rule, {"layer": layer, "cache": "bad"}, value)
                for layer in (first, *others)]},
        ],
        "promql_expr_test": [
            # no traffic: no ratio at all (never NaN), hence no alert
            {"expr": f'{HIT_RATIO}{{cache="quiet"}}', "eval_time": after, "exp_samples": []},
        ],
    }


def _fleet_case(t: Thresholds) -> dict[str, Any]:
    """The same cache name in two namespaces (or whichever identity label tells them apart), at
    97 % and 50 % hits: two series, one alert, for the 50 % one, carrying its identity; the
    97 % one is read by two pods of its job, whose lookups are summed."""
    rule = _by_name(cache_alerts(t))["CacheHitRateLow"]
    apart = "namespace" if "namespace" in t.identity_labels else t.identity_labels[0]
    fixed = {"cluster": "prod", "job": "cachewatch"}

    def identity(team: str) -> dict[str, str]:
        return {label: team if label == apart else fixed.get(label, "fleet")
                for label in t.identity_labels}

    busy = t.min_lookups_per_second * 4  # lookups/s per namespace
    minutes = 30 + seconds(t.hit_rate_for) // 60
    series = []
    # 31/32 (97 %): rates exact in binary, so the summed rate compares exactly
    for team, pods, ratio in (("team-a", ("a-1", "a-2"), 31 / 32), ("team-b", ("b-1",), 0.5)):
        for pod in pods:
            labels = {**identity(team), "pod": pod}
            per_pod = busy / len(pods)
            series += lookups(_layers()[0], "sessions", counter(per_pod * ratio, minutes),
                              counter(per_pod * (1 - ratio), minutes), labels)
    at = f"{minutes - 2}m"
    sample = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(identity("team-a").items()))
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": at, "alertname": "CacheHitRateLow", "exp_alerts": [
                expected(rule, {**identity("team-b"), "layer": _layers()[0], "cache": "sessions"},
                         "50%")]},
        ],
        "promql_expr_test": [
            # the two pods of team-a's job are one cache: their lookups add up
            {"expr": f'{TOTAL}{{cache="sessions",{apart}="team-a"}}', "eval_time": at,
             "exp_samples": [{"labels": f'{TOTAL}{sample},cache="sessions",'
                                        f'layer="{_layers()[0]}"}}',
                              "value": busy}]},
        ],
    }


def _latency_case(t: Thresholds) -> dict[str, Any]:
    rule = _by_name(cache_alerts(t))["CacheLatencyP99High"]
    edges = contract.LATENCY_BUCKETS
    slow_le = next(e for e in edges if e > t.p99_seconds * 1.5)
    rate = max(1.0, t.min_latency_observations_per_second * 10)
    minutes = 30 + seconds(t.p99_for) // 60

    def cache(name: str, all_in: float | None, per_second: float) -> list[dict[str, str]]:
        return histogram(contract.CACHE_LATENCY.name,
                         f'layer="{_layers()[0]}",cache="{name}",op="ping"',
                         edges, all_in, per_second, minutes)

    series = [
        *cache("slow", slow_le, rate),  # every observation in (lower, slow_le]
        *cache("fast", None, rate),  # all in the first bucket
        *cache("sparse", slow_le, t.min_latency_observations_per_second / 4),
    ]
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            before_for(t.p99_for, "CacheLatencyP99High"),
            {"eval_time": f"{minutes - 2}m", "alertname": "CacheLatencyP99High",
             "exp_alerts": [expected(rule, {"layer": _layers()[0], "cache": "slow"},
                                     duration(interpolated_p99(edges, slow_le)))]},
        ],
    }


def _refusal_series(parts: Sequence[BundlePart]) -> list[dict[str, str]]:
    return [{"series": f"{r.metric}{{{labels}}}", "values": values}
            for r in rejections(parts) for labels, values in r.test_series]


def _refusal_tests(rules: dict[str, dict[str, Any]],
                   parts: Sequence[BundlePart]) -> list[dict[str, Any]]:
    """Refusals that go on alert once ``for`` has passed (minute 20), not before (minute 12),
    and are forgotten once they stop (minute 38); one burst never alerts."""
    rule = rules.get("CachewatchWebhooksRejected")
    if rule is None:
        return []
    firing = [expected(rule, {"endpoint": r.endpoint, "reason": reason}, value)
              for r in rejections(parts) for reason, value in r.test_firing]
    return [{"eval_time": "12m", "alertname": rule["alert"], "exp_alerts": []},
            {"eval_time": "20m", "alertname": rule["alert"], "exp_alerts": firing},
            {"eval_time": "38m", "alertname": rule["alert"], "exp_alerts": []}]


def _health_case(t: Thresholds, parts: Sequence[BundlePart]) -> dict[str, Any]:
    rules = _by_name(health_alerts(t, parts))
    down_rule, failing_rule = rules["CachewatchTargetDown"], rules["CachewatchCollectorFailing"]
    state_rule = rules["CachewatchStateDown"]
    up, errors = contract.COLLECTOR_UP.name, contract.COLLECTOR_ERRORS.name
    state_up = contract.STATE_UP.name
    down = seconds(t.down_for) // 60
    window = seconds(t.errors_window) // 60
    failing_at = 5 + seconds(t.errors_for) // 60 + 10
    # collector names, as a test's labels: the first covered layer's collector and its probe
    one, probe = _layers()[0], f"{_layers()[0]}_probe"
    return {
        "interval": "1m",
        "input_series": [
            {"series": f'{up}{{collector="{one}",target="gone"}}', "values": "0x40"},
            {"series": f'{up}{{collector="{one}",target="ok"}}', "values": "1x40"},
            {"series": f'{up}{{collector="{one}",target="blip"}}', "values": "1x5 0x2 1x32"},
            {"series": f'{up}{{collector="{one}",target="back"}}',
             "values": f"0x{down + 3} 1x{40 - down - 4}"},
            # an error every minute: more than max_errors in every window, for good
            {"series": f'{errors}{{collector="{probe}",target="flaky",reason="timeout"}}',
             "values": f"0x5 1+1x{failing_at + 5}"},
            # one burst of errors: over max_errors for one window only, never for `for`
            {"series": f'{errors}{{collector="{one}",target="burst",reason="timeout"}}',
             "values": f"0x5 {t.max_errors * 3}x{failing_at + 5}"},
            {"series": f'{errors}{{collector="{one}",target="ok",reason="timeout"}}',
             "values": "0x10 1x30"},
            {"series": f'{state_up}{{instance="r1"}}', "values": "1x3 0x9 1x17"},
            {"series": f'{state_up}{{instance="r2"}}', "values": "1x3 0x1 1x25"},  # a blip
            *_refusal_series(parts),
        ],
        "alert_rule_test": [
            before_for(t.down_for, "CachewatchTargetDown"),
            {"eval_time": f"{down + 2}m", "alertname": "CachewatchTargetDown", "exp_alerts": [
                expected(down_rule, {"collector": one, "target": "back", "cache": "back"},
                         "0"),
                expected(down_rule, {"collector": one, "target": "gone", "cache": "gone"},
                         "0")]},
            {"eval_time": "29m", "alertname": "CachewatchTargetDown", "exp_alerts": [
                expected(down_rule, {"collector": one, "target": "gone", "cache": "gone"},
                         "0")]},
            {"eval_time": f"{failing_at - 10}m", "alertname": "CachewatchCollectorFailing",
             "exp_alerts": []},  # failing, but not for `for` yet
            {"eval_time": f"{failing_at}m", "alertname": "CachewatchCollectorFailing",
             "exp_alerts": [
                 expected(failing_rule,
                          {"collector": probe, "target": "flaky", "reason": "timeout"},
                          number(window))]},
            {"eval_time": "8m", "alertname": "CachewatchStateDown", "exp_alerts": [
                expected(state_rule, {"instance": "r1"}, "0")]},
            {"eval_time": "29m", "alertname": "CachewatchStateDown", "exp_alerts": []},
            *_refusal_tests(rules, parts),
        ],
    }


def _exporter_cases(t: Thresholds) -> list[dict[str, Any]]:
    """CachewatchDown for a target down for ``down_for`` (not for one that is up, nor for
    another job's), and CachewatchAbsent only when no cachewatch target is left at all."""
    rules = _by_name(exporter_alerts(t))
    own = t.cachewatch_labels
    other = {key: f"{value}-other" for key, value in own.items()}

    def up(labels: dict[str, str], instance: str) -> str:
        return "up{" + ",".join(f'{k}="{v}"' for k, v in {**labels,
                                                          "instance": instance}.items()) + "}"

    down = seconds(t.down_for) // 60
    gone = seconds(t.absent_for) // 60
    return [{
        "interval": "1m",
        "input_series": [
            {"series": up(own, "a:10150"), "values": "1x40"},
            {"series": up(own, "b:10150"), "values": "1x5 0x35"},  # down from minute 6
            {"series": up(other, "c:9100"), "values": "0x40"},  # not cachewatch
        ],
        "alert_rule_test": [
            {"eval_time": f"{6 + down - 2}m", "alertname": "CachewatchDown", "exp_alerts": []},
            {"eval_time": f"{6 + down + 2}m", "alertname": "CachewatchDown", "exp_alerts": [
                expected(rules["CachewatchDown"], {**own, "instance": "b:10150"}, "0")]},
            {"eval_time": "39m", "alertname": "CachewatchAbsent", "exp_alerts": []},
        ],
    }, {
        "interval": "1m",
        "input_series": [{"series": up(other, "c:9100"), "values": f"1x{gone + 10}"}],
        "alert_rule_test": [
            {"eval_time": f"{gone - 2}m", "alertname": "CachewatchAbsent", "exp_alerts": []},
            {"eval_time": f"{gone + 2}m", "alertname": "CachewatchAbsent", "exp_alerts": [
                expected(rules["CachewatchAbsent"], own, "1")]},
            {"eval_time": f"{gone + 2}m", "alertname": "CachewatchDown", "exp_alerts": []},
        ],
    }]


def document(t: Thresholds, parts: Sequence[BundlePart]) -> dict[str, Any]:
    """The promtool test file (its ``rule_files`` is the generated rules file next to it):
    cases in the order of the alerts they test, then the recording rules' own."""
    return {
        "rule_files": ["cachewatch-rules.yml"],
        "evaluation_interval": "1m",
        "tests": [_hit_rate_case(t), *([_fleet_case(t)] if t.identity_labels else []),
                  _latency_case(t),
                  *(case for part in parts for case in part.alert_tests(t)),
                  _health_case(t, parts), *_exporter_cases(t),
                  *(case for part in parts for case in part.recording_tests(t))],
    }
