"""The generated bundle: committed files up to date, promtool and amtool accept them, every alert
is unit-tested and links to a runbook that exists."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from cachewatch.bundle import files
from cachewatch.bundle.rules import alert_rules
from cachewatch.bundle.thresholds import Thresholds

from support import ROOT, require


def test_committed_bundle_equals_a_fresh_generation():
    result = subprocess.run([sys.executable, "-m", "cachewatch", "bundle", "--check", "--out",
                             str(ROOT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr + " -- run `cachewatch bundle` and commit"


def test_promtool_checks_and_unit_tests_the_committed_rules():
    promtool = require("promtool", "prometheus")
    alerts = ROOT / "alerts"
    checked = subprocess.run([promtool, "check", "rules", "cachewatch-rules.yml"], cwd=alerts,
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", "cachewatch-rules.test.yml"],
                            cwd=alerts, capture_output=True, text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@pytest.mark.parametrize("flags", [
    ["--hit-rate", "0.9", "--p99", "30ms", "--hit-rate-for", "5m"],
    ["--hit-rate", "0.7", "--p99", "100ms", "--build-hit-rate", "0.3", "--build-window", "2h"],
])
def test_a_users_own_thresholds_regenerate_a_consistent_tested_bundle(tmp_path, flags):
    promtool = require("promtool", "prometheus")
    subprocess.run([sys.executable, "-m", "cachewatch", "bundle", "--out", str(tmp_path),
                    *flags], check=True, capture_output=True)
    rules = (tmp_path / "alerts" / "cachewatch-rules.yml").read_text()
    assert f"< {flags[1]}" in rules
    tested = subprocess.run([promtool, "test", "rules", "cachewatch-rules.test.yml"],
                            cwd=tmp_path / "alerts", capture_output=True, text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_amtool_accepts_the_alertmanager_example():
    amtool = require("amtool", "prometheus-alertmanager")
    checked = subprocess.run([amtool, "check-config", str(ROOT / "alerts" / "alertmanager.yml")],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_is_unit_tested_annotated_and_has_a_runbook():
    thresholds = Thresholds()
    tests = yaml.safe_load(files(thresholds)["alerts/cachewatch-rules.test.yml"])
    tested = {case["alertname"] for test in tests["tests"]
              for case in test.get("alert_rule_test", [])}
    readme = (ROOT / "README.md").read_text()
    anchors = {re.sub(r"[^a-z0-9]+", "", line.lstrip("#").strip().lower())
               for line in readme.splitlines() if line.startswith("### ")}
    for rule in alert_rules(thresholds):
        assert rule["alert"] in tested, f"{rule['alert']} has no promtool test"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url",
                                            "dashboard_url"}
        assert rule["annotations"]["runbook_url"].split("#")[1] in anchors, rule["alert"]


def test_bad_thresholds_are_refused_with_the_reason(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cachewatch", "bundle", "--out",
                             str(tmp_path), "--hit-rate", "85"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 2
    assert "hit_rate must be between 0 and 1" in result.stderr


DASHBOARD_FILES = sorted((ROOT / "dashboards").glob("*.json"))


def _overlaps(a: dict, b: dict) -> bool:
    return not (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_dashboards_are_well_formed(path):
    import json

    board = json.loads(path.read_text())
    assert board["uid"].startswith("cachewatch-")
    assert board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert any(link["type"] == "dashboards" and link["tags"] == ["cachewatch"]
               for link in board["links"])
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for i, first in enumerate(panels):
        for second in panels[i + 1:]:
            assert not _overlaps(first["gridPos"], second["gridPos"]), (first["title"],
                                                                        second["title"])
    for panel in panels:
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults.get("unit"), panel["title"]
        assert defaults["thresholds"]["steps"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert target["expr"]
        # today's panel shapes, not the pre-Grafana-7 ones Grafana would migrate
        assert "fieldOptions" not in (panel.get("options") or {}), panel["title"]
        if panel["type"] == "heatmap":
            assert panel["options"]["yAxis"]["unit"] == defaults["unit"]
            assert {t["format"] for t in panel["targets"]} == {"heatmap"}
        if panel["type"] == "bargauge":
            assert panel["options"]["reduceOptions"]["calcs"] == ["lastNotNull"]


def test_dashboard_threshold_lines_follow_the_alert_thresholds(tmp_path):
    import json

    subprocess.run([sys.executable, "-m", "cachewatch", "bundle", "--out", str(tmp_path),
                    "--hit-rate", "0.93", "--p99", "25ms"], check=True, capture_output=True)
    board = json.loads((tmp_path / "dashboards" / "overview.json").read_text())
    steps = {p["title"]: [s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]]
             for p in board["panels"]}
    assert steps["Hit rate by layer and cache"] == [None, 0.93]
    assert steps["P99 latency (client-observed)"] == [None, 0.025]


def test_grafana_alert_provisioning_mirrors_the_prometheus_alerts():
    thresholds = Thresholds()
    document = yaml.safe_load(files(thresholds)["alerts/grafana-alert-rules.yml"])
    assert document["apiVersion"] == 1
    (group,) = document["groups"]
    by_title = {rule["title"]: rule for rule in group["rules"]}
    assert set(by_title) == {rule["alert"] for rule in alert_rules(thresholds)}
    assert len({rule["uid"] for rule in group["rules"]}) == len(group["rules"])
    datasource = yaml.safe_load(files(thresholds)["dashboards/provisioning/datasources.yml"])
    uid = datasource["datasources"][0]["uid"]
    for prometheus_rule in alert_rules(thresholds):
        rule = by_title[prometheus_rule["alert"]]
        refs = {query["refId"]: query for query in rule["data"]}
        assert rule["condition"] in refs
        assert refs["A"]["datasourceUid"] == uid
        assert refs["A"]["model"]["expr"] == prometheus_rule["expr"]
        assert rule["for"] == prometheus_rule["for"]
        assert rule["labels"] == prometheus_rule["labels"]
        assert "$value " not in str(rule["annotations"])  # Prometheus syntax translated
    assert "{{ humanizePercentage $values.A.Value }}" in \
        by_title["CacheHitRateLow"]["annotations"]["description"]
