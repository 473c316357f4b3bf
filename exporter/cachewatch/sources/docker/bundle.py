"""Docker's part of the bundle: the per-image build cache ratio, its alert and promtool case,
the Docker builds dashboard and the build receiver's refusals."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client.utils import floatToGoString

from ...bundle.alerting import PanelLink, alert
from ...bundle.goals import Goal, generic
from ...bundle.panels import (
    NEUTRAL,
    DashboardSpec,
    Panel,
    fleet,
    hit_steps,
    legend,
    tidy_table,
)
from ...bundle.part import BundlePart, Rejections
from ...bundle.promtool import before_for, counter, expected, two_phase
from ...bundle.series import HIT_RATIO
from ...bundle.thresholds import (
    Thresholds,
    seconds,
)
from . import contract
from .thresholds import DockerThresholds, gib

L = contract
STEPS, BUILDS = L.DOCKER_BUILD_STEPS.name, L.DOCKER_BUILDS.name
# Recorded per build window: the series name ends with the window (``...:increase1h``).
BUILD_RATIO = "image:cachewatch_docker_build_hit_ratio:increase"
def recording_rules(t: Thresholds) -> list[dict[str, Any]]:
    """Share of build steps taken from the layer cache per image, over the build window."""
    by, w = t.by("image"), t.of(DockerThresholds).build_window
    return [
        {"record": BUILD_RATIO + w,
         "expr": f'sum by ({by}) (increase({STEPS}{{result="hit"}}[{w}])) / '
                 f"(sum by ({by}) (increase({STEPS}[{w}])) > 0)"},
    ]


RATE = "[$__rate_interval]"


def _per_hour(metric: str, selector: str) -> str:
    """What the last hour held: one build is 1, not a short rate scaled up to a spike."""
    return f"(increase({metric}{selector}[1h]))"


def _build_panels(t: Thresholds) -> list[Panel]:
    """What the builds take from the cache, what busts it and what it costs, per image."""
    sel, own = fleet(t, 'image=~"$image"'), t.of(DockerThresholds)
    return [
        Panel("timeseries", f"Build cache hit rate ({own.build_window})",
              ((f"{BUILD_RATIO}{own.build_window}{sel}", legend(t, "{{image}}")),),
              "percentunit", hit_steps(own.build_hit_rate), 16,
              f"Share of build steps taken from the layer cache per image over "
              f"{own.build_window}; the line is where DockerBuildCacheHitRateLow fires."),
        Panel("bargauge", "Dockerfile findings",
              ((f"sum by ({t.by('image')}) ({L.DOCKERFILE_FINDINGS.name}{sel})",
                legend(t, "{{image}}")),),
              "none", (("green", None), ("orange", 1.0)), 8,
              "Cache problems `cachewatch doctor` finds in each image's Dockerfile (the "
              "builds.dockerfiles setting): sources copied before the dependency install, "
              "apt lists and package caches kept, unpinned images and downloads, a leaky "
              ".dockerignore, changing build arguments early. 0 is clean; run `cachewatch "
              "doctor --url` on the file for the lines, the fixes and what each one costs."),
        Panel("timeseries", "Time re-running steps (per hour)",
              ((f"sum by ({t.by('image')}) "
                + _per_hour(L.DOCKER_BUILD_REBUILD_SECONDS.name, sel), legend(t, "{{image}}")),),
              "s", NEUTRAL, 12,
              "Seconds spent executing steps in builds that had a usable cache, over the "
              "hour before each point."),
        Panel("table", "Top cache busters",
              ((f"topk(10, sum by ({t.by('image', 'instruction')}) "
                f"(increase({L.DOCKER_BUILD_CACHE_BUSTERS.name}{sel}[$__range])))", ""),),
              "none", NEUTRAL, 12,
              "The instruction that first missed the cache, counted per build over the time "
              "range: the one to move down in the Dockerfile.",
              extra=tidy_table(t, {"image": "image", "instruction": "instruction",
                                   "Value": "Builds it busted"}, "Builds it busted")),
        Panel("timeseries", "Builds by outcome (per hour)",
              ((f"sum by ({t.by('status')}) " + _per_hour(BUILDS, sel),
                legend(t, "{{status}}")),), "none", NEUTRAL, 12,
              "Builds finished in the hour before each point, by outcome."),
        # Each column counts the builds of its own step ([$__interval] at a step of
        # $__interval): a longer window would count one build in several columns.
        Panel("heatmap", "Build duration",
              ((f"sum by (le) (increase({L.DOCKER_BUILD_DURATION.name}_bucket{sel}"
                "[$__interval]))", "{{le}}"),), "s", NEUTRAL, 12,
              "How long builds take: each column is the builds of one interval by duration.",
              min_interval="1m"),
    ]


def _age(seconds: float) -> str:
    """An age bucket's edge as a reader says it: 1h, 6h, 1d, 30d."""
    hours = round(seconds / 3600)
    return f"{hours}h" if hours < 24 else f"{hours // 24}d"


def _ages(expr: str) -> str:
    """``expr`` with an ``age`` label naming each ``within`` edge readably ("30d", not
    "2.592e+06"): the edges are the contract's, written as the exporter writes them."""
    named = [(edge, _age(seconds)) for seconds, edge in zip(
        L.BUILD_CACHE_AGE_BUCKETS, map(floatToGoString, L.BUILD_CACHE_AGE_BUCKETS),
        strict=True)]
    for edge, age in [*named, ("+Inf", "any time")]:
        pattern = re.escape(edge).replace("\\", "\\\\")  # a PromQL string holds a regex
        expr = f'label_replace({expr}, "age", "{age}", "within", "{pattern}")'
    return expr


def _engine_panels(t: Thresholds) -> list[Panel]:
    """What the engine holds: the build cache's size against its budget, its age, image
    events."""
    budget = t.of(DockerThresholds).build_cache_budget_bytes
    return [
        Panel("timeseries", "Build cache size and reclaimable",
              ((f"sum by ({t.by('host')}) ({L.DOCKER_BUILD_CACHE_BYTES.name}{fleet(t)})",
                legend(t, "{{host}} size")),
               (f"{L.DOCKER_BUILD_CACHE_RECLAIMABLE.name}{fleet(t)}",
                legend(t, "{{host}} reclaimable"))),
              "bytes", (("green", None), ("red", float(budget))), 12,
              "The Docker engine's build cache (/system/df) and what a prune would free; the "
              f"line is the {gib(budget)} budget of DockerBuildCacheOverBudget."),
        Panel("bargauge", "Build cache by last use",
              ((_ages(f"sum by ({t.by('within')}) "
                      f"({L.DOCKER_BUILD_CACHE_IDLE_BYTES.name}{fleet(t)})"),
                legend(t, "used within {{age}}")),),
              "bytes", NEUTRAL, 12,
              "Bytes of build cache last used within each age (cumulative): most bytes only in "
              "the oldest bars is a bloated cache; nothing older than an hour is a thrashing "
              "one, pruned before it is reused."),
        Panel("timeseries", "Image events (per hour)",
              ((f"sum by ({t.by('action')}) " + _per_hour(L.DOCKER_EVENTS.name, fleet(t)),
                legend(t, "{{action}}")),), "none", NEUTRAL, 12,
              "Image tag, pull, push and delete events from the engine in the hour before each "
              "point."),
    ]


def _pull_panels(t: Thresholds) -> list[Panel]:
    """What the nodes' pulls took from their own layers and what they downloaded."""
    sel, pulls = fleet(t, 'image=~"$image"'), fleet(t, 'layer="image_pull"')
    layers, size = L.DOCKER_PULL_LAYERS.name, L.DOCKER_PULL_LAYER_BYTES.name
    return [
        Panel("timeseries", "Image pulls: layers already on the node",
              ((f"{HIT_RATIO}{pulls}",
                legend(t, "{{cache}}")),),
              "percentunit", hit_steps(t.hit_rate), 8,
              "Share of pulled images' layers each node already held (reused, not "
              "downloaded), per image; the line is where CacheHitRateLow fires."),
        Panel("timeseries", "Pulled layers reused and fetched (per hour)",
              ((f"sum by ({t.by('result')}) " + _per_hour(layers, sel),
                legend(t, "{{result}}")),), "none", NEUTRAL, 8,
              "Layers of pulled images in the hour before each point: reused (on the node "
              "before the pull) or fetched (downloaded)."),
        Panel("timeseries", "Pulled bytes reused and fetched",
              ((f"sum by ({t.by('host', 'result')}) (rate({size}{sel}{RATE}))",
                legend(t, "{{host}} {{result}}")),), "Bps", NEUTRAL, 8,
              "Uncompressed bytes of pulled layers per second, by node: fetched is what the "
              "node downloaded (unpacked size), reused what it already held."),
    ]


def panels(t: Thresholds) -> list[Panel]:
    """Cache hit rate, time lost and the instructions busting the cache, per image; the
    engine's build cache; the layers the nodes' pulls reused."""
    return [*_build_panels(t), *_engine_panels(t), *_pull_panels(t)]


def variables(t: Thresholds) -> tuple[tuple[str, str], ...]:
    """The images built in the selected fleet."""
    return (("image", f"label_values({STEPS}{fleet(t)}, image)"),)


DASHBOARD = DashboardSpec("builds", "cachewatch-docker-builds", "cachewatch: Docker builds",
                          panels, variables)


def _hit_rate_alert(t: Thresholds) -> dict[str, Any]:
    by, own = t.by("image"), t.of(DockerThresholds)
    return alert(
        "DockerBuildCacheHitRateLow",
        f"{BUILD_RATIO}{own.build_window} < {own.build_hit_rate}\n"
        f"and on ({by}) sum by ({by}) (increase({BUILDS}"
        f"[{own.build_window}])) >= {own.min_builds}",
        own.build_for, "warning",
        f"Builds of {{{{ $labels.image }}}} reuse under {own.build_hit_rate:.0%} of layers",
        f"Over {own.build_window}, builds of {{{{ $labels.image }}}} took "
        f"{{{{ $value | humanizePercentage }}}} of their steps from the layer cache; the "
        "Docker builds dashboard names the instruction that keeps busting it.",
        PanelLink(DASHBOARD.uid, "Build cache hit rate (1h)", (("image", "image"),)), t,
        layer="docker_build")


def _budget_alert(t: Thresholds) -> dict[str, Any]:
    by, own = t.by("host"), t.of(DockerThresholds)
    budget = gib(own.build_cache_budget_bytes)
    return alert(
        "DockerBuildCacheOverBudget",
        f"sum by ({by}) ({L.DOCKER_BUILD_CACHE_BYTES.name}) > {own.build_cache_budget_bytes}",
        own.build_cache_for, "warning",
        f"Build cache on {{{{ $labels.host }}}} above its {budget} budget",
        f"The build cache on {{{{ $labels.host }}}} holds {{{{ $value | humanize1024 }}}}B, "
        f"over the {budget} budget for {own.build_cache_for}: prune it to the budget with "
        f"`docker builder prune --keep-storage {budget}`, or raise the budget.",
        PanelLink(DASHBOARD.uid, "Build cache size and reclaimable"), t, layer="docker_build")


def alerts(t: Thresholds) -> list[dict[str, Any]]:
    """Images whose builds keep missing the layer cache, once there are enough builds to say;
    hosts whose build cache stays over its size budget."""
    return [_hit_rate_alert(t), _budget_alert(t)]


def _hit_rate_case(t: Thresholds) -> dict[str, Any]:
    rule, own = _hit_rate_alert(t), t.of(DockerThresholds)
    window = seconds(own.build_window) // 60
    minutes = window * 3
    bad = own.build_hit_rate / 2

    def image(name: str, hit_ratio: float, builds_per_hour: int, until: int = minutes,
              then: float | None = None) -> list[dict[str, str]]:
        per_minute = builds_per_hour / 60 * 10  # ten steps a build
        labels = f'image="{name}",target=""'
        hits = (counter(per_minute * hit_ratio / 60, minutes) if then is None else
                two_phase(per_minute * hit_ratio / 60, per_minute * then / 60, until, minutes))
        misses = (counter(per_minute * (1 - hit_ratio) / 60, minutes) if then is None else
                  two_phase(per_minute * (1 - hit_ratio) / 60, per_minute * (1 - then) / 60,
                            until, minutes))
        return [{"series": f'{STEPS}{{{labels},result="hit"}}', "values": hits},
                {"series": f'{STEPS}{{{labels},result="miss"}}', "values": misses},
                {"series": f'{BUILDS}{{{labels},status="success"}}',
                 "values": counter(builds_per_hour / 3600, minutes)}]

    value = f"{bad * 100:.4g}%"
    return {
        "interval": "1m",
        "input_series": [
            *image("busted", bad, own.min_builds * 4),
            *image("healthy", (1 + own.build_hit_rate) / 2, own.min_builds * 4),
            *image("rare", bad, max(1, own.min_builds // 3)),  # too few builds to judge
            *image("fixed", bad, own.min_builds * 4, until=window, then=0.95),
        ],
        "alert_rule_test": [
            before_for(own.build_for, "DockerBuildCacheHitRateLow"),
            {"eval_time": f"{window - 2}m", "alertname": "DockerBuildCacheHitRateLow",
             "exp_alerts": [expected(rule, {"image": "busted"}, value),
                            expected(rule, {"image": "fixed"}, value)]},
            {"eval_time": f"{minutes - 5}m", "alertname": "DockerBuildCacheHitRateLow",
             "exp_alerts": [expected(rule, {"image": "busted"}, value)]},
        ],
    }


def _budget_case(t: Thresholds) -> dict[str, Any]:
    rule, own = _budget_alert(t), t.of(DockerThresholds)
    hold = seconds(own.build_cache_for) // 60
    budget = own.build_cache_budget_bytes
    big = budget + budget // 2
    name = L.DOCKER_BUILD_CACHE_BYTES.name

    def host(host_name: str, values: str) -> dict[str, str]:
        return {"series": f'{name}{{host="{host_name}",type="regular",in_use="false",'
                          f'shared="false"}}', "values": values}

    return {
        "interval": "1m",
        "input_series": [
            host("big", f"{big}x{hold * 2}"),
            host("small", f"{budget // 4}x{hold * 2}"),
            # above the budget for half the hold, then pruned: never fires
            host("pruned", f"{big}x{hold // 2} {budget // 4}x{hold + hold // 2}"),
        ],
        "alert_rule_test": [
            before_for(own.build_cache_for, "DockerBuildCacheOverBudget"),
            {"eval_time": f"{hold + 5}m", "alertname": "DockerBuildCacheOverBudget",
             "exp_alerts": [expected(rule, {"host": "big"}, _humanize1024(big))]},
        ],
    }


def _humanize1024(value: float) -> str:
    """Prometheus' ``humanize1024`` (``%.4g`` with Ki/Mi/Gi/... prefixes)."""
    for prefix in ("", "Ki", "Mi", "Gi", "Ti", "Pi"):
        if abs(value) < 1024 or prefix == "Pi":
            return f"{value:.4g}{prefix}"
        value /= 1024
    return f"{value:.4g}"


def tests(t: Thresholds) -> list[dict[str, Any]]:
    """Busted, healthy, rarely built and fixed images: only the busted ones alert; only the
    host over its budget for the whole hold alerts."""
    return [_hit_rate_case(t), _budget_case(t)]


def _as_cache(expr: str) -> str:
    """A per-image series as the shared lookups' caches are named (``cache`` = the image)."""
    return f'label_replace({expr}, "cache", "$1", "image", "(.*)")'


def goals(t: Thresholds) -> tuple[Goal, ...]:
    """Builds judged as DockerBuildCacheHitRateLow does (steps over the build window, enough
    builds); node pulls by the core's CacheHitRateLow."""
    own = t.of(DockerThresholds)
    by, w = t.by("image"), own.build_window

    def ratio(_: Thresholds, matchers: str) -> str:
        return (f'label_replace({_as_cache(f"{BUILD_RATIO}{w}{{{matchers}}}")}, '
                f'"layer", "docker_build", "", "")')

    def gate(_: Thresholds, matchers: str) -> str:
        return _as_cache(f"sum by ({by}) (increase({BUILDS}{{{matchers}}}[{w}])) "
                         f">= {own.min_builds}")

    return (Goal("docker_build", own.build_hit_rate, ratio, gate, DASHBOARD.uid, "image",
                 "Build cache hit rate (1h)", lookups=False),
            generic(t, "image_pull", DASHBOARD.uid, variable="",
                    panel="Image pulls: layers already on the node"))


PART = BundlePart(
    goals=goals,
    targets="Docker engines",
    dashboard=DASHBOARD, recording_rules=recording_rules,
    alert_rules=alerts, alert_tests=tests,
    rejections=Rejections(
        L.BUILD_INGEST_REJECTED.name, "builds", position=1, benign_reason="duplicate",
        test_series=(('reason="duplicate"', "0x5 1+1x35"),)))  # duplicates go on: no alert
