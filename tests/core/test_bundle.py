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
    groups = yaml.safe_load((tmp_path / "alerts" / "cachewatch-rules.yml").read_text())["groups"]
    # Expressions as Prometheus reads them: YAML may fold a long one across lines.
    exprs = [" ".join(rule["expr"].split()) for group in groups for rule in group["rules"]]
    assert any(f"< {flags[1]} " in expr for expr in exprs)
    tested = subprocess.run([promtool, "test", "rules", "cachewatch-rules.test.yml"],
                            cwd=tmp_path / "alerts", capture_output=True, text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_amtool_accepts_the_alertmanager_example():
    amtool = require("amtool", "prometheus-alertmanager")
    checked = subprocess.run([amtool, "check-config", str(ROOT / "alerts" / "alertmanager.yml")],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.e2e
@pytest.mark.parametrize(("labels", "receiver"), [
    (["alertname=CacheHitRateLow", "layer=redis", "namespace=shop"], "service-owners"),
    (["alertname=DockerBuildCacheHitRateLow", "layer=docker_build"], "ci-team"),
    (["alertname=RegistryPullThroughHitRateLow", "layer=registry"], "platform-team"),
    (["alertname=CachewatchDown", "severity=warning"], "cachewatch-operators"),
    # other teams' alerts that only look alike stay out of the cachewatch subtree
    (["alertname=RedisDown", "layer=redis"], "default"),
    (["alertname=CacheHitRateLowish", "layer=app"], "default"),
    (["alertname=KubePodCrashLooping", "severity=critical"], "default"),
])
def test_routing_matches_exactly_the_bundles_alerts(labels, receiver):
    amtool = require("amtool", "prometheus-alertmanager")
    routed = subprocess.run([amtool, "config", "routes", "test", "--config.file",
                             str(ROOT / "alerts" / "alertmanager.yml"), *labels],
                            capture_output=True, text=True, check=False)
    assert routed.stdout.strip() == receiver, routed.stdout + routed.stderr


def test_alerts_carry_the_identity_labels_and_inhibit_per_cache_of_the_fleet():
    thresholds = Thresholds()
    document = yaml.safe_load(files(thresholds)["alerts/alertmanager.yml"])
    (subtree,) = document["route"]["routes"]
    names = [rule["alert"] for rule in alert_rules(thresholds)]
    assert subtree["matchers"] == [f'alertname=~"{"|".join(names)}"']
    assert subtree["group_by"] == ["alertname", "cluster", "namespace", "job", "layer", "cache"]
    (inhibit,) = document["inhibit_rules"]
    assert inhibit["equal"] == ["cluster", "namespace", "job", "cache"]
    by = "cluster, namespace, job"
    for rule in alert_rules(thresholds):
        if rule["alert"] in ("CachewatchDown", "CachewatchAbsent", "CachewatchTargetDown"):
            continue  # raw series: they carry every label of `up` / collector_up
        assert f"by ({by}, " in rule["expr"] or f"on ({by}, " in rule["expr"], rule["alert"]
    assert names.count("CachewatchDown") == 1
    down = next(r for r in alert_rules(thresholds) if r["alert"] == "CachewatchDown")
    assert down["expr"] == 'up{job="cachewatch"} == 0'
    assert {r["alert"]: r["labels"]["severity"] for r in alert_rules(thresholds)}[
        "CachewatchTargetDown"] == "warning"
    assert all(r["for"] != "0m" for r in alert_rules(thresholds))


@pytest.mark.e2e
def test_fleet_settings_regenerate_a_tested_bundle(tmp_path):
    promtool = require("promtool", "prometheus")
    subprocess.run([sys.executable, "-m", "cachewatch", "bundle", "--out", str(tmp_path),
                    "--identity-labels", "region,tenant", "--cachewatch-selector",
                    'job="cw", team="cache"', "--operator-selector", "release=monitoring"],
                   check=True, capture_output=True)
    rules_text = (tmp_path / "alerts" / "cachewatch-rules.yml").read_text()
    assert "sum by (region, tenant, layer, cache, result)" in rules_text
    assert "namespace" not in rules_text
    assert 'absent(up{job="cw", team="cache"})' in rules_text
    monitor = yaml.safe_load((tmp_path / "deploy/kubernetes/podmonitor.yaml").read_text())
    assert monitor["metadata"]["labels"]["release"] == "monitoring"
    assert {r["targetLabel"]: r["replacement"] for r in
            monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]} == {"job": "cw",
                                                                           "team": "cache"}
    tested = subprocess.run([promtool, "test", "rules", "cachewatch-rules.test.yml"],
                            cwd=tmp_path / "alerts", capture_output=True, text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.parametrize(("flags", "message"), [
    (["--identity-labels", "cluster,cache"], "identity labels cannot be cache"),
    (["--cachewatch-selector", 'job=~"cw.*"'], "label=\"value\" matchers"),
    (["--operator-selector", "release"], "'release' is not key=value"),
])
def test_bad_fleet_settings_are_refused_with_the_reason(tmp_path, flags, message):
    from typer.testing import CliRunner

    from cachewatch.cli import build_cli

    result = CliRunner().invoke(build_cli(), ["bundle", "--out", str(tmp_path), *flags])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "alerts").exists()


def test_every_alert_is_unit_tested_annotated_and_has_a_runbook():
    thresholds = Thresholds()
    tests = yaml.safe_load(files(thresholds)["alerts/cachewatch-rules.test.yml"])
    cases = [case for test in tests["tests"] for case in test.get("alert_rule_test", [])]
    tested = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    runbooks = (ROOT / "docs" / "alerts.md").read_text()
    anchors = {re.sub(r"[^a-z0-9]+", "", line.lstrip("#").strip().lower())
               for line in runbooks.splitlines() if line.startswith("### ")}
    for rule in alert_rules(thresholds):
        assert rule["alert"] in tested, f"{rule['alert']} has no promtool test where it fires"
        assert rule["alert"] in quiet, f"{rule['alert']} has no promtool test where it must not"
        assert rule["for"] != "0m", rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url",
                                            "dashboard_url"}
        page, anchor = rule["annotations"]["runbook_url"].split("#")
        assert page == thresholds.runbook_url, rule["alert"]
        assert anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in anchors, rule["alert"]


def test_bad_thresholds_are_refused_with_the_reason(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cachewatch", "bundle", "--out",
                             str(tmp_path), "--hit-rate", "85"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 2
    assert "hit_rate must be between 0 and 1" in result.stderr


def test_dashboard_threshold_lines_follow_the_alert_thresholds(tmp_path):
    import json

    subprocess.run([sys.executable, "-m", "cachewatch", "bundle", "--out", str(tmp_path),
                    "--hit-rate", "0.93", "--p99", "25ms"], check=True, capture_output=True)
    board = json.loads((tmp_path / "dashboards" / "overview.json").read_text())
    shown = {p["title"]: p for p in board["panels"] if p["type"] != "row"}
    steps = {title: [s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]]
             for title, p in shown.items()}
    assert steps["redis: hit rate"] == [None, 0.93]
    assert steps["docker_build: hit rate"] == [None, 0.5]  # its own alert's goal, not the core's
    assert steps["P99 latency (client-observed)"] == [None, 0.025]
    latency = shown["P99 latency (client-observed)"]["fieldConfig"]["defaults"]
    assert latency["custom"]["axisSoftMax"] == 0.03  # the line stays on the axis
    assert (shown["redis: hit rate"]["fieldConfig"]["defaults"]["min"],
            shown["redis: hit rate"]["fieldConfig"]["defaults"]["max"]) == (0, 1)
    assert "< 0.93" in shown["Caches below hit-rate goal"]["targets"][0]["expr"]


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
