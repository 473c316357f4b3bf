"""The generated dashboards: Grafana's dashboard model accepts them, and every panel of every
dashboard holds the fleet rules (identity variables on every selector, rates over
``$__rate_interval``, instant bar gauges and tables, no coarsening, a description). Each rule is
checked on every panel: there is no list of exceptions."""

from __future__ import annotations

import copy
import enum
import json
import re
import types
import typing
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import prometheus
from grafana_foundation_sdk.models.dashboard import Dashboard

from cachewatch.bundle import dashboards
from cachewatch.bundle.panels import panel_id
from cachewatch.bundle.thresholds import Thresholds

from support import ROOT

DASHBOARD_FILES = sorted((ROOT / "dashboards").glob("*.json"))
IDENTITY = Thresholds().identity_labels
ALERT_WINDOWS = {Thresholds().errors_window, Thresholds().rejected_window, "1h"}
plugins.register_default_plugins()  # panel options and Prometheus queries get their models

# --- Grafana's dashboard model (grafana-foundation-sdk, generated from Grafana's schema) -------


def _lost(given: Any, read_back: Any, path: str) -> list[str]:
    """What did not survive reading into the model and writing it out again: a field the model
    does not have, or a value it holds differently."""
    if isinstance(given, dict) and isinstance(read_back, dict):
        return [problem for key, value in given.items() for problem in (
            [f"{path}.{key}: not in Grafana's model"] if key not in read_back else
            _lost(value, read_back[key], f"{path}.{key}"))]
    if isinstance(given, list) and isinstance(read_back, list) and len(given) == len(read_back):
        return [p for i, (a, b) in enumerate(zip(given, read_back, strict=True))
                for p in _lost(a, b, f"{path}[{i}]")]
    return [] if given == read_back else [f"{path}: {given!r} read back as {read_back!r}"]


def _fits(value: Any, hint: Any) -> bool:
    """Does ``value`` have the type the model declares (primitives, literals, enums, lists)?"""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, typing.TypeVar):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value) if args else \
            isinstance(value, list)
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return value in {member.value for member in hint} or isinstance(value, hint)
    if hint in (str, bool):
        return isinstance(value, hint)
    return True  # a model class: checked when the walk reaches it


def _mistyped(model: Any, path: str = "") -> list[str]:
    """Fields of the decoded model whose value is not of the declared type."""
    if isinstance(model, list):
        return [p for i, item in enumerate(model) for p in _mistyped(item, f"{path}[{i}]")]
    if not hasattr(model, "__dict__") or not type(model).__module__.startswith(
            "grafana_foundation_sdk"):
        return []
    hints = typing.get_type_hints(type(model))
    problems = []
    for name, value in vars(model).items():
        if name in hints and value is not None and not _fits(value, hints[name]):
            problems.append(f"{path}.{name}: {value!r} is not {hints[name]}")
        problems += _mistyped(value, f"{path}.{name}")
    return problems


# What Grafana's Prometheus annotation support reads beside its query (its ``processEvents``):
# the dashboard model types an annotation's ``target`` as the built-in Grafana source's, so a
# Prometheus annotation is checked against the Prometheus query model and these fields.
PROMETHEUS_ANNOTATION = {"titleFormat": str, "textFormat": str, "tagKeys": str,
                         "useValueForTime": bool}


def _model_problems(given: dict[str, Any], model: Any, path: str) -> list[str]:
    read_back = json.loads(json.dumps(model, cls=JSONEncoder))
    return _lost(given, read_back, path) + _mistyped(model, path)


def _prometheus_annotation(annotation: dict[str, Any], path: str) -> list[str]:
    """Problems of a Prometheus annotation's own fields, which it gives up to the rest."""
    problems = _model_problems(annotation["target"],
                               prometheus.Dataquery.from_json(annotation.pop("target")),
                               f"{path}.target")
    for key, kind in PROMETHEUS_ANNOTATION.items():
        if key in annotation and not isinstance(annotation.pop(key), kind):
            problems.append(f"{path}.{key}: not a {kind.__name__}")
    return problems


def schema_problems(board: dict[str, Any]) -> list[str]:
    """Everything in ``board`` that Grafana's dashboard model does not allow."""
    board = copy.deepcopy(board)
    problems = [problem for i, annotation in enumerate(board["annotations"]["list"])
                if annotation["datasource"]["type"] == "prometheus"
                for problem in _prometheus_annotation(annotation, f".annotations.list[{i}]")]
    return problems + _model_problems(board, Dashboard.from_json(board), "")


def test_the_schema_check_finds_what_grafana_would_not_read():
    board = json.loads(DASHBOARD_FILES[0].read_text())
    board["panels"][0]["intervalFactr"] = 2  # an unknown field
    board["panels"][1]["gridPos"]["w"] = "wide"  # a string where Grafana wants a number
    board["annotations"]["list"] = [{
        "name": "alerts", "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "enable": True, "iconColor": "red", "titleFormat": 1,
        "target": {"expr": "ALERTS", "refId": "Anno", "step": "60s"}}]
    problems = schema_problems(board)
    assert ".panels[0].intervalFactr: not in Grafana's model" in problems
    assert ".annotations.list[0].target.step: not in Grafana's model" in problems
    assert ".annotations.list[0].titleFormat: not a str" in problems
    assert any(p.startswith(".panels[1].grid_pos.w: 'wide'") for p in problems), problems


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_dashboards_match_grafanas_dashboard_model(path):
    assert schema_problems(json.loads(path.read_text())) == []


# --- PromQL: every vector selector and every range of every panel query -----------------------

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\[[^\]]*\]|[a-zA-Z_:][a-zA-Z0-9_:]*|=~|!~|!=|==|\{|\S')
_AGGREGATIONS = {"sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "stddev",
                 "stdvar", "count_values", "group"}
_KEYWORDS = _AGGREGATIONS | {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, matchers) of every vector selector in ``expr``."""
    tokens = _TOKEN.findall(expr)
    found, i = [], 0
    while i < len(tokens):
        token = tokens[i]
        after = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in _LABEL_LISTS:  # by (a, b): label names, not selectors
            i += 2
            while i < len(tokens) and tokens[i] != ")":
                i += 1
        elif token == "{" or (re.match(r"[a-zA-Z_:]", token) and token not in _KEYWORDS
                              and after != "("):
            name = "" if token == "{" else token
            start = i + (1 if token == "{" else 2 if after == "{" else 0)
            if token == "{" or after == "{":
                end = start
                while tokens[end] != "}":
                    end += 1
                found.append((name, " ".join(tokens[start:end])))
                i = end
            else:
                found.append((name, ""))
        i += 1
    return found


def test_the_selector_finder_sees_every_selector():
    expr = ('sum by (cluster, le) (rate(a_bucket{x="1", y=~"}"}[$__rate_interval])) '
            'and on (cache) topk(3, b @ end()) or vector(0) / time()')
    assert selectors(expr) == [("a_bucket", 'x = "1" , y =~ "}"'), ("b", "")]


def _panels() -> list[tuple[str, dict[str, Any]]]:
    """Every panel that shows data (rows only head them)."""
    return [(path.stem, panel) for path in DASHBOARD_FILES
            for panel in json.loads(path.read_text())["panels"] if panel["type"] != "row"]


PANELS = _panels()


def _id(item: tuple[str, dict[str, Any]]) -> str:
    return f"{item[0]}/{item[1]['title']}"


@pytest.mark.parametrize("item", PANELS, ids=[_id(p) for p in PANELS])
def test_every_panel_keeps_to_the_fleet_rules(item):
    _, panel = item
    assert panel.get("description", "").strip(), "no description"
    assert panel["fieldConfig"]["defaults"].get("unit"), "no unit"
    assert panel["fieldConfig"]["defaults"]["thresholds"]["steps"], "no thresholds"
    assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert "maxDataPoints" not in panel
    assert "interval" not in panel
    for target in panel["targets"]:
        assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert "intervalFactor" not in target
        assert "step" not in target
        expr = target["expr"]
        found = selectors(expr)
        assert found, expr
        for name, matchers in found:
            for label in IDENTITY:  # every series filtered by the fleet's variables
                assert f'{label} =~ "${label}"' in matchers, (name, label, expr)
        windows = re.findall(r"\[([^\]]*)\]", re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr))
        if panel["type"] == "heatmap":
            # each column counts its own step: over $__interval, at least two samples long
            assert windows == ["$__interval"], expr
            assert target["interval"], "no Min step under $__interval"
        for window in windows if panel["type"] != "heatmap" else ():
            # the panel's rate interval, its range, or the window the alert it shows tests
            assert window in ("$__rate_interval", "$__range", *ALERT_WINDOWS), (window, expr)
        ranks = re.search(r"\b(topk|bottomk)\(", expr)
        if panel["type"] in ("bargauge", "table"):
            assert target["instant"] is True, expr
            assert target["range"] is False, expr
        elif ranks:  # a ranking in a range query is pinned to one instant
            assert "@ end()" in expr, expr
        if panel["type"] == "heatmap":
            assert target["format"] == "heatmap"
            assert panel["options"]["yAxis"]["unit"] == panel["fieldConfig"]["defaults"]["unit"]
        if panel["type"] == "bargauge":
            assert panel["options"]["reduceOptions"]["calcs"] == ["lastNotNull"]


def _overlaps(a: dict, b: dict) -> bool:
    return not (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_every_dashboard_has_the_fleet_variables_and_a_clean_layout(path):
    board = json.loads(path.read_text())
    assert board["uid"].startswith("cachewatch-")
    assert board["schemaVersion"] >= 36
    variables = board["templating"]["list"]
    assert variables[0]["name"] == "datasource"
    assert variables[0]["type"] == "datasource"
    names = [v["name"] for v in variables[1:]]
    assert names[:len(IDENTITY)] == list(IDENTITY)  # cluster, namespace, job, then its own
    assert len(names) > len(IDENTITY)
    for variable in variables[1:]:
        assert variable["type"] == "query"
        assert variable["multi"] is True
        assert variable["includeAll"] is True
        assert variable["allValue"] == ".*"  # All also matches series without the label
        assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for label in names[:names.index(variable["name"])]:  # narrowed by those before it
            if label in IDENTITY:
                assert f'{label}=~"${label}"' in variable["query"], variable
    assert any(link["type"] == "dashboards" and link["tags"] == ["cachewatch"]
               for link in board["links"])
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for i, first in enumerate(panels):
        for second in panels[i + 1:]:
            assert not _overlaps(first["gridPos"], second["gridPos"]), (first["title"],
                                                                        second["title"])


def test_identity_labels_are_a_setting_of_the_dashboards_too():
    own = Thresholds(identity_labels=("region", "tenant"))
    board = json.loads(next(dashboards.render(spec, own) for spec in dashboards.specs()
                            if spec.key == "redis"))
    assert [v["name"] for v in board["templating"]["list"]][1:3] == ["region", "tenant"]
    for panel in board["panels"]:
        for target in panel["targets"]:
            for _, matchers in selectors(target["expr"]):
                assert 'tenant =~ "$tenant"' in matchers
                assert "namespace" not in matchers


def test_every_query_of_the_specs_is_in_the_files():
    rendered = {t["expr"] for _, p in PANELS for t in p["targets"]}
    assert {expr for _, _, expr in dashboards.all_exprs(Thresholds())} == rendered


# --- Variables: a chosen value narrows every panel whose series can be narrowed by it ----------


def _series_labels() -> dict[str, set[str]]:
    """Series name -> its labels (besides the identity labels Prometheus adds): the families of
    the metric contract, and the recorded series, named ``level:metric:operation`` where the
    level lists the labels they keep."""
    from cachewatch.metrics.contract import Kind
    from cachewatch.sources import specs

    found: dict[str, set[str]] = {}
    for spec in specs():
        found[spec.name] = set(spec.labels)
        if spec.kind in (Kind.HISTOGRAM, Kind.SUMMARY):
            found |= {spec.name + "_count": set(spec.labels), spec.name + "_sum":
                      set(spec.labels), spec.name + "_bucket": {*spec.labels, "le"}}
    rules = yaml.safe_load((ROOT / "alerts" / "cachewatch-rules.yml").read_text())
    for rule in (r for group in rules["groups"] for r in group["rules"] if "record" in r):
        kept = set(rule["record"].split(":")[0].split("_"))
        assert all(re.search(rf"\b{label}\b", rule["expr"]) for label in kept), rule
        found[rule["record"]] = kept
    return found


SERIES_LABELS = _series_labels()


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_variables_see_every_cache_and_no_data_names_what_feeds_a_panel(path):
    from cachewatch.bundle import series

    board = json.loads(path.read_text())
    for variable in board["templating"]["list"][1:]:
        assert "cachewatch_build_info" not in variable["query"]
        if variable["name"] in IDENTITY:  # every layer feeds the lookups, Micrometer's too
            assert variable["query"].startswith(f"label_values({series.TOTAL}{{")
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        text = panel["fieldConfig"]["defaults"]["noValue"]
        if text.startswith("No data from "):
            read = {name for t in panel["targets"]
                    for name in re.findall(r"\b(?:cachewatch_[a-z0-9_]+|[a-z_]+:[a-z0-9_]+:"
                                           r"[a-z0-9_]+|ALERTS|up)\b", t["expr"])}
            assert read, panel["title"]
            assert all(name in text for name in read), (panel["title"], text)


def test_the_series_labels_are_known_for_what_the_dashboards_read():
    assert SERIES_LABELS["cachewatch_registry_blob_mounts_total"] == {"registry", "repository"}
    assert SERIES_LABELS["layer_cache:cachewatch_cache_hit_ratio:rate5m"] == {"layer", "cache"}
    assert "le" in SERIES_LABELS["cachewatch_docker_build_duration_seconds_bucket"]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_every_selector_follows_the_variables_its_series_can_be_narrowed_by(path):
    board = json.loads(path.read_text())
    own = [v["name"] for v in board["templating"]["list"]
           if v["type"] == "query" and v["name"] not in IDENTITY]
    assert own, "a dashboard of its own variables"
    read = 0
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            for name, matchers in selectors(target["expr"]):
                for variable in own:
                    if variable in SERIES_LABELS.get(name, ()):
                        read += 1
                        assert f'{variable} =~ "${variable}"' in matchers, (
                            panel["title"], name, variable)
    assert read, "no selector reads a series its variables narrow"


# --- What a reader sees first, and the scales ---------------------------------------------------


def _board(key: str) -> dict[str, Any]:
    return json.loads((ROOT / "dashboards" / f"{key}.json").read_text())


def test_the_overview_opens_on_the_now_row():
    panels = _board("overview")["panels"]
    assert panels[0]["type"] == "row"
    assert panels[0]["title"] == "Now"
    stats = [p for p in panels if p["type"] == "stat"]
    assert [p["title"] for p in stats] == ["Caches below hit-rate goal", "Caches over P99 goal",
                                          "Alerts firing", "Exporters up", "Targets down"]
    for stat in stats:
        assert stat["gridPos"]["y"] + stat["gridPos"]["h"] <= 8, stat["title"]
    (table,) = [p for p in panels if p["title"] == "Every cache, worst first"]
    assert table["gridPos"]["y"] < 8
    assert table["gridPos"]["w"] == 24
    assert table["gridPos"]["y"] == max(s["gridPos"]["y"] + s["gridPos"]["h"] for s in stats)
    sort = next(t for t in table["transformations"] if t["id"] == "sortBy")
    assert sort["options"]["sort"] == [{"field": "vs goal", "desc": False}]  # worst first
    assert next(t for t in table["transformations"]
                if t["id"] == "organize")["options"]["excludeByName"] == {"Time": True}
    cache = next(o for o in table["fieldConfig"]["overrides"]
                 if o["matcher"]["options"] == "cache")
    (link,) = cache["properties"][0]["value"]
    assert link["url"].startswith("/d/${__data.fields.dashboard}?${__url_time_range}")
    for label in IDENTITY:
        assert f"var-{label}=${{__data.fields.{label}}}" in link["url"]
    # every later chart sits below the Now row, in a row of its own
    assert all(p["gridPos"]["y"] >= 5 for p in panels[len(stats) + 2:])
    assert sum(p["type"] == "row" for p in panels) >= 3


def test_every_layer_has_one_goal_and_the_now_row_judges_it_as_its_alert_does():
    from cachewatch.bundle.parts import PARTS
    from cachewatch.sources import layers

    t = Thresholds()
    goals = {goal.layer: goal for part in PARTS for goal in part.goals(t)}
    assert sorted(goals) == sorted(layer.name for layer in layers())
    assert goals["docker_build"].hit_rate == 0.5  # DockerBuildCacheHitRateLow's, not 85 %
    assert goals["redis"].hit_rate == t.hit_rate
    (below,) = next(p for p in _board("overview")["panels"]
                    if p["title"] == "Caches below hit-rate goal")["targets"]
    assert f"> {t.min_lookups_per_second}" in below["expr"]  # CacheHitRateLow's traffic gate
    assert ">= 3" in below["expr"]  # DockerBuildCacheHitRateLow's minimum of builds


@pytest.mark.parametrize("item", PANELS, ids=[_id(p) for p in PANELS])
def test_hit_rates_are_drawn_on_0_to_1_and_latencies_keep_their_line_in_view(item):
    _, panel = item
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["noValue"].strip()
    if panel["type"] == "table":
        return
    if defaults["unit"] == "percentunit":
        assert (defaults["min"], defaults["max"]) == (0, 1)
    red = [s["value"] for s in defaults["thresholds"]["steps"]
           if s["color"] == "red" and s["value"] is not None]
    if defaults["unit"] == "s" and red and panel["type"] == "timeseries":
        assert defaults["custom"]["axisSoftMax"] == pytest.approx(max(red) * 1.2)


_SERIES = re.compile(r"\b(cachewatch_[a-z0-9_]+|[a-z_]+:[a-z0-9_]+:[a-z0-9_]+|up)\b")


def _committed_panels() -> dict[tuple[str, int], dict[str, Any]]:
    """(dashboard uid, panel id) -> panel, over every committed dashboard."""
    boards = [json.loads(path.read_text()) for path in DASHBOARD_FILES]
    return {(board["uid"], panel["id"]): panel for board in boards for panel in board["panels"]}


def _alerts() -> list[dict[str, Any]]:
    rules = yaml.safe_load((ROOT / "alerts" / "cachewatch-rules.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def test_every_alert_links_to_a_panel_drawing_its_number():
    panels = _committed_panels()
    for rule in _alerts():
        url = rule["annotations"]["dashboard_url"]
        targets = re.findall(r"/d/([\w-]+)\?viewPanel=(\d+)", url)
        assert targets, (rule["alert"], url)
        assert url.count("&from=now-3h&to=now") == len(targets), url  # each with a time range
        tested = set(_SERIES.findall(rule["expr"]))
        for uid, pid in targets:
            panel = panels.get((uid, int(pid)))
            assert panel is not None, (rule["alert"], uid, pid)
            shown = {name for target in panel["targets"] for name in
                     _SERIES.findall(target["expr"])}
            assert tested & shown, (rule["alert"], panel["title"], tested, shown)


def test_alert_links_carry_the_alert_identity_and_its_layer_dashboard():
    by_name = {rule["alert"]: rule["annotations"]["dashboard_url"] for rule in _alerts()}
    redis = by_name["CacheHitRateLow"].split('{{ if eq $labels.layer "redis" }}')[1]
    redis = redis.split("{{ else")[0]
    assert redis.startswith("http://localhost:3000/d/cachewatch-redis?viewPanel=")
    for variable in ("cluster", "namespace", "job", "cache"):
        assert f"&var-{variable}={{{{ $labels.{variable} | urlquery }}}}" in redis
    assert "var-image={{ $labels.image | urlquery }}" in by_name["DockerBuildCacheHitRateLow"]
    assert "var-" not in by_name["CachewatchAbsent"]  # absent() keeps no label to set


def test_every_grafana_rule_is_attached_to_its_panel():
    panels = _committed_panels()
    grafana = yaml.safe_load((ROOT / "alerts" / "grafana-alert-rules.yml").read_text())
    rules = [rule for group in grafana["groups"] for rule in group["rules"]]
    assert {rule["title"] for rule in rules} == {rule["alert"] for rule in _alerts()}
    for rule in rules:
        annotations = rule["annotations"]
        key = (annotations["__dashboardUid__"], int(annotations["__panelId__"]))
        assert key in panels, (rule["title"], key)


def test_panel_ids_derive_from_titles():
    for path in DASHBOARD_FILES:
        board = json.loads(path.read_text())
        assert [p["id"] for p in board["panels"]] == [
            panel_id(p["title"]) for p in board["panels"]], path.stem


def test_the_overview_marks_the_bundles_alerts_in_time():
    grafana, firing = _board("overview")["annotations"]["list"]
    assert (grafana["name"], grafana["type"]) == ("Annotations & Alerts", "dashboard")
    assert grafana["datasource"] == {"type": "grafana", "uid": "-- Grafana --"}
    assert firing["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert firing["enable"] is True
    ((name, matchers),) = selectors(firing["target"]["expr"])
    assert name == "ALERTS"
    names = "|".join(rule["alert"] for rule in _alerts())
    assert matchers == " , ".join([*(f'{label} =~ "${label}"' for label in IDENTITY),
                                  'alertstate = "firing"', f'alertname =~ "{names}"'])
    assert firing["titleFormat"] == "{{alertname}}"
    assert {"cache", "severity"} <= set(firing["tagKeys"].split(","))
    assert _board("redis")["annotations"]["list"] == []  # the overview's alone


def _first_line(board: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The panels on the grid's first line, and the rest."""
    first = [p for p in board["panels"] if p["gridPos"]["y"] == 0]
    return first, [p for p in board["panels"] if p["gridPos"]["y"] != 0]


@pytest.mark.parametrize("hit_rate", [Thresholds().hit_rate, 0.93])
def test_every_layer_dashboard_opens_on_its_goal_numbers(hit_rate):
    from cachewatch.bundle import series
    from cachewatch.bundle.parts import PARTS

    t = Thresholds(hit_rate=hit_rate)
    goals = [goal for part in PARTS for goal in part.goals(t)]
    boards = {spec.uid: json.loads(dashboards.render(spec, t)) for spec in dashboards.specs()}
    assert {goal.dashboard for goal in goals} == set(boards) - {"cachewatch-overview"}
    for goal in goals:
        first, rest = _first_line(boards[goal.dashboard])
        assert {p["type"] for p in first} <= {"stat", "gauge"}, goal.dashboard
        assert sum(p["gridPos"]["w"] for p in first) == 24
        below = max(p["gridPos"]["h"] for p in first)
        assert all(p["gridPos"]["y"] >= below for p in rest)  # volumes come after
        shown = {p["title"]: p for p in first}
        hit = shown[f"{goal.layer}: hit rate now"]
        assert [(s["color"], s["value"]) for s in
                hit["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [
            ("red", None), ("green", goal.hit_rate)]
        count = shown[f"{goal.layer}: caches below goal"]["targets"][0]["expr"]
        assert f"< {goal.hit_rate}\n" in count
        if goal.variable:  # the dashboard's cache variable narrows the goal numbers
            assert f'{goal.variable}=~"${goal.variable}"' in hit["targets"][0]["expr"]
        if not goal.latency_panel:
            assert f"{goal.layer}: P99 now" not in shown
            continue
        p99 = shown[f"{goal.layer}: P99 now"]
        assert p99["targets"][0]["expr"].startswith(series.P99)
        assert f'layer="{goal.layer}"' in p99["targets"][0]["expr"]
        assert [(s["color"], s["value"]) for s in
                p99["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [
            ("green", None), ("red", t.p99_seconds)]
    assert boards["cachewatch-docker-builds"]["panels"][0]["title"] == \
        "docker_build: hit rate now"
    assert _first_line(boards["cachewatch-docker-builds"])[0][0]["fieldConfig"]["defaults"][
        "thresholds"]["steps"][1]["value"] == 0.5  # its own alert's goal at any --hit-rate


# --- Polish as the mixins do ---------------------------------------------------------------------


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_every_dashboard_shares_its_crosshair_and_legends_show_last_and_min(path):
    board = json.loads(path.read_text())
    assert board["graphTooltip"] == 1  # one moment across every panel
    for panel in board["panels"]:
        if panel["type"] == "timeseries":
            legend = panel["options"]["legend"]
            assert legend["calcs"] == ["lastNotNull", "min"], panel["title"]
            assert (legend["displayMode"], legend["showLegend"]) == ("table", True)


TABLES = [item for item in PANELS if item[1]["type"] == "table"]


@pytest.mark.parametrize("item", TABLES, ids=[_id(p) for p in TABLES])
def test_every_table_is_tidied_sorted_and_coloured_where_it_has_thresholds(item):
    _, table = item
    steps = {t["id"]: t["options"] for t in table["transformations"]}
    assert steps["organize"]["excludeByName"]["Time"] is True
    assert steps["organize"]["renameByName"], "named columns"
    assert list(steps)[-1] == "sortBy"
    (sort,) = steps["sortBy"]["sort"]
    shown = {*steps["organize"]["renameByName"].values(), *steps["organize"]["indexByName"]}
    assert sort["field"] in shown
    if len(table["fieldConfig"]["defaults"]["thresholds"]["steps"]) > 1:
        coloured = [o for o in table["fieldConfig"]["overrides"] for p in o["properties"]
                    if p["id"] == "custom.cellOptions"]
        assert coloured, "thresholds that colour no cell"


def test_age_buckets_read_as_ages():
    (target,) = next(p for p in _board("builds")["panels"]
                     if p["title"] == "Build cache by last use")["targets"]
    assert target["legendFormat"].endswith("used within {{age}}")
    assert re.findall(r'"age", "([^"]+)"', target["expr"]) == [
        "1h", "6h", "1d", "3d", "7d", "14d", "30d", "90d", "any time"]


def test_the_app_dashboard_draws_the_p99_its_alert_tests():
    from cachewatch.bundle import series

    panels = {p["title"]: p for p in _board("app")["panels"]}
    (target,) = panels["P99 latency"]["targets"]
    assert target["expr"].startswith(series.P99)
    assert panels["P99 latency"]["fieldConfig"]["defaults"]["thresholds"]["steps"][1][
        "value"] == Thresholds().p99_seconds
