"""The Memcached source as the proof that a source is one package: nothing outside it names it,
its whole exposition matches its golden file, and the core's generic alerts cover its layer."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

import golden
from cachewatch.bundle import assembly
from cachewatch.bundle.thresholds import Thresholds
from cachewatch.sources.memcached import bundle

from support import ROOT, require

PACKAGE = ROOT / "exporter" / "cachewatch" / "sources" / "memcached"
REGISTRATION = ROOT / "exporter" / "cachewatch" / "sources" / "__init__.py"
# The registration list's two lines: the import and the tuple.
REGISTRATION_LINES = (re.compile(r"^\s+from \. import [a-z_, ]+$"),
                      re.compile(r"^\s+return \([a-z_.A-Z, ]+\)$"))


def test_no_file_of_the_exporter_outside_the_package_names_memcached():
    """The contract for every future source: adding one touches its package and the
    registration list, nothing else under exporter/."""
    naming = []
    for path in sorted((ROOT / "exporter").rglob("*")):
        if not path.is_file() or PACKAGE in path.parents or "__pycache__" in path.parts:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if "memcache" not in line.lower():
                continue
            if path == REGISTRATION and any(p.match(line) for p in REGISTRATION_LINES):
                continue
            naming.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert naming == []
    assert "memcached" in REGISTRATION.read_text()  # and the package is registered


def _core_golden() -> ModuleType:
    """The core golden test's module, for its settings and masking (loaded by path: test
    modules are not a package), at collection, as the core's reads its update switch."""
    spec = importlib.util.spec_from_file_location(
        "cachewatch_core_golden", ROOT / "tests" / "core" / "test_golden.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CORE = _core_golden()


def test_whole_exposition_matches_the_golden_file(exporter_factory, monkeypatch):
    core = CORE
    golden.patch(monkeypatch)
    exporter = exporter_factory(core._only(*golden.SECTIONS, **golden.OVERRIDES))
    golden.feed(exporter)
    text = core._masked(exporter.get("/metrics").text)
    path = core.GOLDEN / "memcached.prom"
    if core.UPDATE:
        path.write_text(text)
    again = "CACHEWATCH_UPDATE_GOLDEN=1 pytest tests/sources/memcached"
    assert path.is_file(), f"no {path.name}: run `{again}` and review it"
    assert text == path.read_text(), f"{path.name} differs: run `{again}`, review, commit"


def test_the_bundle_runs_the_memcached_latency_case():
    document = yaml.safe_load(assembly.files(Thresholds())["alerts/cachewatch-rules.test.yml"]
                              .split("\n", 1)[1])
    assert bundle.latency_case(Thresholds()) in document["tests"]


@pytest.mark.e2e
@pytest.mark.parametrize("thresholds", [Thresholds(), Thresholds(hit_rate=0.95, p99_seconds=0.1,
                                                                 hit_rate_for="5m")])
def test_the_generic_alerts_fire_for_memcached(thresholds, tmp_path: Path):
    """Both cases against the generated rules, with the user's thresholds. Today's hit-rate rule
    selects layer=~"redis|app" (a list in the core): the case runs against that rule widened to
    memcached, as the core will derive it from the sources' declarations."""
    promtool = require("promtool", "prometheus")
    files = assembly.files(thresholds)
    rules = files["alerts/cachewatch-rules.yml"]
    if 'layer=~"redis|app"' in rules:
        rules = rules.replace('layer=~"redis|app"', 'layer=~"redis|app|memcached"')
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "tests.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"], "evaluation_interval": "1m",
        "tests": [bundle.latency_case(thresholds), bundle.hit_rate_case(thresholds)]}))
    checked = subprocess.run([promtool, "test", "rules", str(tmp_path / "tests.yml")],
                             capture_output=True, text=True, timeout=120, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
