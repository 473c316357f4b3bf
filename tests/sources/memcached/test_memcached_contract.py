"""The Memcached source's declarations at work in the bundle: its layer is covered by the core's
generic alerts (the hit-rate rule selects it and its promtool case fires for it), its P99 case
runs, and its alerts go to the service owners, like Redis'. The whole exposition is
``tests/core/test_golden.py``'s, and that nothing else names the source is
``tests/core/test_structure.py``'s."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from cachewatch.bundle import assembly
from cachewatch.bundle.thresholds import Thresholds
from cachewatch.sources.memcached import bundle

from support import ROOT, require

USERS = Thresholds(hit_rate=0.95, p99_seconds=0.1, hit_rate_for="5m")


@pytest.mark.parametrize("thresholds", [Thresholds(), USERS])
def test_the_generic_alerts_cover_memcached_with_their_cases(thresholds):
    files = assembly.files(thresholds)
    rules = {rule["alert"]: rule for group in yaml.safe_load(files["alerts/cachewatch-rules.yml"])
             ["groups"] for rule in group["rules"] if "alert" in rule}
    covered = re.search(r'layer=~"([^"]*)"', rules["CacheHitRateLow"]["expr"]).group(1)
    assert "memcached" in covered.split("|")
    tests = yaml.safe_load(files["alerts/cachewatch-rules.test.yml"].split("\n", 1)[1])["tests"]
    assert bundle.latency_case(thresholds) in tests
    firing = [alert["exp_labels"] for case in tests for check in case.get("alert_rule_test", [])
              if check["alertname"] == "CacheHitRateLow" for alert in check["exp_alerts"]]
    assert {"layer": "memcached", "cache": "bad", "severity": "warning"} in firing


def test_the_latency_case_expects_the_slow_memcached_only():
    case = bundle.latency_case(Thresholds())
    (firing,) = [check for check in case.get("alert_rule_test", []) if check["exp_alerts"]]
    assert [alert["exp_labels"] for alert in firing["exp_alerts"]] == [
        {"layer": "memcached", "cache": "sessions", "severity": "warning"}]
    assert firing["exp_alerts"][0]["exp_annotations"]["description"] == (
        "P99 of memcached cache sessions as its clients see it is 99.5ms (target 50 ms).")


@pytest.mark.e2e
def test_memcached_alerts_go_to_the_service_owners():
    amtool = require("amtool", "prometheus-alertmanager")
    routed = subprocess.run(
        [amtool, "config", "routes", "test", "--config.file",
         str(ROOT / "alerts" / "alertmanager.yml"), "alertname=CacheHitRateLow",
         "layer=memcached"], capture_output=True, text=True, check=False)
    assert routed.stdout.strip() == "service-owners", routed.stdout + routed.stderr
