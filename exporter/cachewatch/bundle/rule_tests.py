"""``promtool test rules`` cases for every alert: fires, does not fire, no traffic, low traffic,
recovery; generated with the same thresholds as the rules, so a user's own bundle is tested too.

Expected annotations are the rendered text, so a broken template fails the test.
"""

from __future__ import annotations

import re
from typing import Any

from .. import contract
from .rules import alert_rules
from .thresholds import Thresholds, seconds

LOOKUPS = contract.CACHE_LOOKUPS.name


def _counter(per_second: float, minutes: int, start: float = 0.0) -> str:
    """promtool's expanding notation for a counter growing ``per_second`` for ``minutes``."""
    return f"{start:g}+{per_second * 60:g}x{minutes}"


def _two_phase(first: float, second: float, switch: int, end: int) -> str:
    """A counter at ``first``/s until minute ``switch``, then ``second``/s until ``end``."""
    at_switch = first * 60 * switch
    return (f"{_counter(first, switch)} "
            f"{_counter(second, end - switch - 1, at_switch + second * 60)}")


def _render(template: str, labels: dict[str, str], value: str) -> str:
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)
    return re.sub(r"\{\{ \$value[^}]*\}\}", value, text)


def _expected(t: Thresholds, name: str, labels: dict[str, str], value: str) -> dict[str, Any]:
    rule = next(r for r in alert_rules(t) if r["alert"] == name)
    all_labels = {**labels, **rule["labels"]}
    return {"exp_labels": all_labels,
            "exp_annotations": {k: _render(v, all_labels, value)
                                for k, v in rule["annotations"].items()}}


def _duration(value: float) -> str:
    """Prometheus' humanizeDuration for values under a second."""
    for prefix in ("", "m", "u", "n"):
        if value >= 1 or prefix == "n":
            return f"{value:.4g}{prefix}s"
        value *= 1000
    raise AssertionError("unreachable")


def _lookups(layer: str, cache: str, hits: str, misses: str) -> list[dict[str, str]]:
    base = f'{LOOKUPS}{{layer="{layer}",cache="{cache}",result='
    return [{"series": base + '"hit"}', "values": hits},
            {"series": base + '"miss"}', "values": misses}]


def _hit_rate_case(t: Thresholds) -> dict[str, Any]:
    low = t.min_lookups_per_second
    bad = t.hit_rate / 2  # well under the target
    good = (1 + t.hit_rate) / 2  # well over it
    busy = low * 4  # lookups/s, comfortably above the low-traffic guard
    minutes = 40 + seconds(t.hit_rate_for) // 60
    series = [
        *_lookups("redis", "bad", _counter(busy * bad, minutes),
                  _counter(busy * (1 - bad), minutes)),
        *_lookups("app", "good", _counter(busy * good, minutes),
                  _counter(busy * (1 - good), minutes)),
        *_lookups("redis", "quiet", "0x60", "0x60"),
        *_lookups("redis", "sparse", _counter(low / 4 * bad, minutes),
                  _counter(low / 4 * (1 - bad), minutes)),
        *_lookups("app", "recovering", _two_phase(busy * bad, busy * good, 20, minutes),
                  _two_phase(busy * (1 - bad), busy * (1 - good), 20, minutes)),
    ]
    firing_at = f"{20 - 1}m"  # bad since the start: past `for` by then
    after = f"{20 + 5 + seconds(t.hit_rate_for) // 60 + 2}m"
    value = f"{bad * 100:.4g}%"
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": firing_at, "alertname": "CacheHitRateLow", "exp_alerts": [
                _expected(t, "CacheHitRateLow", {"layer": "app", "cache": "recovering"}, value),
                _expected(t, "CacheHitRateLow", {"layer": "redis", "cache": "bad"}, value)]},
            {"eval_time": after, "alertname": "CacheHitRateLow", "exp_alerts": [
                _expected(t, "CacheHitRateLow", {"layer": "redis", "cache": "bad"}, value)]},
        ],
        "promql_expr_test": [
            # no traffic: no ratio at all (never NaN), hence no alert
            {"expr": 'layer_cache:cachewatch_cache_hit_ratio:rate5m{cache="quiet"}',
             "eval_time": after, "exp_samples": []},
        ],
    }


def _latency_case(t: Thresholds) -> dict[str, Any]:
    edges = [*contract.LATENCY_BUCKETS, "+Inf"]
    slow_le = next(e for e in contract.LATENCY_BUCKETS if e > t.p99_seconds * 1.5)
    rate = max(1.0, t.min_latency_observations_per_second * 10)
    minutes = 30 + seconds(t.p99_for) // 60

    def histogram(cache: str, all_under: float | None, per_second: float) -> list[dict]:
        rows = []
        for edge in edges:
            inside = all_under is None or (edge != "+Inf" and edge < all_under)
            counts = "0x60" if (inside and all_under is not None) else _counter(per_second,
                                                                               minutes)
            le = edge if edge == "+Inf" else repr(float(edge))
            rows.append({"series": f'{contract.CACHE_LATENCY.name}_bucket{{layer="redis",'
                                   f'cache="{cache}",op="ping",le="{le}"}}', "values": counts})
        rows.append({"series": f'{contract.CACHE_LATENCY.name}_count{{layer="redis",'
                               f'cache="{cache}",op="ping"}}',
                     "values": _counter(per_second, minutes)})
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
                 "exp_annotations": _expected(t, "CacheLatencyP99High",
                                              {"layer": "redis", "cache": "slow"},
                                              _duration(p99))["exp_annotations"]}]},
        ],
    }


def _redis_server_case(t: Thresholds) -> dict[str, Any]:
    name = contract.REDIS_SERVER_LATENCY.name
    busy = t.min_lookups_per_second * 4
    slow, fast = t.p99_seconds * 2, t.p99_seconds / 10

    def command(cmd: str, p99: str, calls: str) -> list[dict[str, str]]:
        return [{"series": f'{name}{{cache="main",command="{cmd}",quantile="0.99"}}',
                 "values": p99},
                {"series": f'{name}_count{{cache="main",command="{cmd}"}}', "values": calls}]

    return {
        "interval": "1m",
        "input_series": [
            *command("get", f"{slow:g}x40", _counter(busy, 40)),  # fires
            *command("set", f"{fast:g}x40", _counter(busy, 40)),  # fast: no alert
            *command("hgetall", f"{slow:g}x40", _counter(t.min_lookups_per_second / 4, 40)),
            *command("info", f"{slow:g}x40", _counter(busy, 40)),  # admin command: left out
            *command("lrange", f"{slow:g}x20 {fast:g}x20", _counter(busy, 40)),  # recovers
        ],
        "alert_rule_test": [
            {"eval_time": "15m", "alertname": "RedisServerLatencyP99High", "exp_alerts": [
                _expected(t, "RedisServerLatencyP99High", {"cache": "main", "command": "get"},
                          _duration(slow)),
                _expected(t, "RedisServerLatencyP99High",
                          {"cache": "main", "command": "lrange"}, _duration(slow))]},
            {"eval_time": "35m", "alertname": "RedisServerLatencyP99High", "exp_alerts": [
                _expected(t, "RedisServerLatencyP99High", {"cache": "main", "command": "get"},
                          _duration(slow))]},
        ],
    }


def _build_case(t: Thresholds) -> dict[str, Any]:
    steps, builds = contract.DOCKER_BUILD_STEPS.name, contract.DOCKER_BUILDS.name
    window = seconds(t.build_window) // 60
    minutes = window * 3
    bad = t.build_hit_rate / 2

    def image(name: str, hit_ratio: float, builds_per_hour: int, until: int = minutes,
              then: float | None = None) -> list[dict[str, str]]:
        per_minute = builds_per_hour / 60 * 10  # ten steps a build
        labels = f'image="{name}",target=""'
        hits = (_counter(per_minute * hit_ratio / 60, minutes) if then is None else
                _two_phase(per_minute * hit_ratio / 60, per_minute * then / 60, until,
                           minutes))
        misses = (_counter(per_minute * (1 - hit_ratio) / 60, minutes) if then is None else
                  _two_phase(per_minute * (1 - hit_ratio) / 60, per_minute * (1 - then) / 60,
                             until, minutes))
        return [{"series": f'{steps}{{{labels},result="hit"}}', "values": hits},
                {"series": f'{steps}{{{labels},result="miss"}}', "values": misses},
                {"series": f'{builds}{{{labels},status="success"}}',
                 "values": _counter(builds_per_hour / 3600, minutes)}]

    value = f"{bad * 100:.4g}%"
    return {
        "interval": "1m",
        "input_series": [
            *image("busted", bad, t.min_builds * 4),
            *image("healthy", (1 + t.build_hit_rate) / 2, t.min_builds * 4),
            *image("rare", bad, max(1, t.min_builds // 3)),  # too few builds to judge
            *image("fixed", bad, t.min_builds * 4, until=window, then=0.95),
        ],
        "alert_rule_test": [
            {"eval_time": f"{window - 2}m", "alertname": "DockerBuildCacheHitRateLow",
             "exp_alerts": [
                 _expected(t, "DockerBuildCacheHitRateLow", {"image": "busted"}, value),
                 _expected(t, "DockerBuildCacheHitRateLow", {"image": "fixed"}, value)]},
            {"eval_time": f"{minutes - 5}m", "alertname": "DockerBuildCacheHitRateLow",
             "exp_alerts": [
                 _expected(t, "DockerBuildCacheHitRateLow", {"image": "busted"}, value)]},
        ],
    }


def _health_case(t: Thresholds) -> dict[str, Any]:
    up, errors = contract.COLLECTOR_UP.name, contract.COLLECTOR_ERRORS.name
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
            {"series": f'{contract.REGISTRY_REJECTED.name}{{source="distribution",'
                       f'reason="malformed_json"}}', "values": "0x5 4x25"},
            {"series": f'{contract.BUILD_INGEST_REJECTED.name}{{reason="duplicate"}}',
             "values": "0x5 9x25"},
            {"series": f'{contract.APP_PUSH_REJECTED.name}{{reason="auth"}}', "values": "0x30"},
        ],
        "alert_rule_test": [
            {"eval_time": f"{down + 2}m", "alertname": "CachewatchTargetDown", "exp_alerts": [
                _expected(t, "CachewatchTargetDown",
                          {"collector": "redis", "target": "back", "cache": "back"}, "0"),
                _expected(t, "CachewatchTargetDown",
                          {"collector": "redis", "target": "gone", "cache": "gone"}, "0")]},
            {"eval_time": "29m", "alertname": "CachewatchTargetDown", "exp_alerts": [
                _expected(t, "CachewatchTargetDown",
                          {"collector": "redis", "target": "gone", "cache": "gone"}, "0")]},
            {"eval_time": "8m", "alertname": "CachewatchCollectorFailing", "exp_alerts": [
                _expected(t, "CachewatchCollectorFailing",
                          {"collector": "redis_probe", "target": "flaky", "reason": "timeout"},
                          _number(burst))]},
            {"eval_time": "8m", "alertname": "CachewatchWebhooksRejected", "exp_alerts": [
                _expected(t, "CachewatchWebhooksRejected",
                          {"endpoint": "registry", "reason": "malformed_json"}, "4")]},
            {"eval_time": "29m", "alertname": "CachewatchWebhooksRejected", "exp_alerts": []},
        ],
    }


def _registry_case(t: Thresholds) -> dict[str, Any]:
    hold = seconds(t.registry_for) // 60
    minutes = hold + 30
    bad, good = t.registry_hit_rate / 2, (1 + t.registry_hit_rate) / 2
    busy = t.min_lookups_per_second  # pulls are rarer than cache lookups
    value = f"{bad * 100:.4g}%"
    return {
        "interval": "1m",
        "input_series": [
            *_lookups("registry", "mirror", _counter(busy * bad, minutes),
                      _counter(busy * (1 - bad), minutes)),
            *_lookups("registry", "warm", _counter(busy * good, minutes),
                      _counter(busy * (1 - good), minutes)),
            *_lookups("registry", "idle", f"0x{minutes}", f"0x{minutes}"),
            *_lookups("registry", "trickle", _counter(busy / 40 * bad, minutes),
                      _counter(busy / 40 * (1 - bad), minutes)),
        ],
        "alert_rule_test": [
            {"eval_time": f"{hold - 5}m", "alertname": "RegistryPullThroughHitRateLow",
             "exp_alerts": []},  # still pending: `for` not reached
            {"eval_time": f"{hold + 10}m", "alertname": "RegistryPullThroughHitRateLow",
             "exp_alerts": [_expected(t, "RegistryPullThroughHitRateLow",
                                      {"layer": "registry", "cache": "mirror"}, value)]},
        ],
    }


def _number(value: float) -> str:
    """Prometheus' humanize for plain numbers."""
    return f"{value:.4g}"


def _micrometer_case(t: Thresholds) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [
            {"series": 'cache_gets_total{cache="books",result="hit",cacheManager="cm"}',
             "values": _counter(9, 20)},
            {"series": 'cache_gets_total{cache="books",result="miss",cacheManager="cm"}',
             "values": _counter(1, 20)},
        ],
        "promql_expr_test": [
            {"expr": 'layer_cache:cachewatch_cache_hit_ratio:rate5m{cache="books"}',
             "eval_time": "10m",
             "exp_samples": [{"labels": 'layer_cache:cachewatch_cache_hit_ratio:rate5m'
                                        '{cache="books",layer="app"}', "value": 0.9}]},
        ],
    }


def documents(t: Thresholds) -> dict[str, Any]:
    """The promtool test file (its ``rule_files`` is the generated rules file next to it)."""
    return {
        "rule_files": ["cachewatch-rules.yml"],
        "evaluation_interval": "1m",
        "tests": [_hit_rate_case(t), _latency_case(t), _redis_server_case(t), _build_case(t),
                  _registry_case(t), _health_case(t), _micrometer_case(t)],
    }
