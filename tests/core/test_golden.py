"""The whole ``/metrics`` of each source on fixed inputs, against a committed golden file.

The node_exporter habit: a change to any family, label, value or help text shows up as a diff of
``tests/golden/<source>.prom`` in review. Volatile samples (process, durations, versions) are
masked. Each registered source declares its scenario in ``tests/sources/<name>/golden.py``
(``GOLDEN = support.Golden(...)``); this module finds them by the registered packages' names.
Regenerate after an intended change with ``make golden``
(``CACHEWATCH_UPDATE_GOLDEN=1 pytest tests/core/test_golden.py``) and review the diff.
"""

from __future__ import annotations

import importlib.util
import os
import re

import pytest

from cachewatch.sources import packages, sections

from support import ROOT, Golden
from support import settings as exporter_settings

GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("CACHEWATCH_UPDATE_GOLDEN") == "1"
# Samples whose values depend on the machine or the moment, not on the inputs.
VOLATILE = re.compile(
    r"^((?:cachewatch_collector_duration_seconds|cachewatch_build_info"
    r"|cachewatch_app_cache_last_push_timestamp_seconds)\{[^}]*\}) .*$")


def _scenario(source: str) -> Golden:
    """``GOLDEN`` of ``tests/sources/<source>/golden.py``, loaded by path (the test folders
    are not packages)."""
    path = ROOT / "tests" / "sources" / source / "golden.py"
    assert path.is_file(), f"no {path.relative_to(ROOT)}: every registered source has one"
    spec = importlib.util.spec_from_file_location(f"golden_{source}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GOLDEN


def _masked(text: str) -> str:
    kept = []
    for line in text.splitlines():
        if line.startswith(("process_", "python_", "# HELP process_", "# TYPE process_",
                            "# HELP python_", "# TYPE python_")):
            continue
        kept.append(VOLATILE.sub(r"\1 <volatile>", line))
    return "\n".join(kept) + "\n"


@pytest.mark.parametrize("source", [source.name for source in packages()])
def test_whole_exposition_of_each_source_matches_its_golden_file(source, exporter_factory,
                                                                 monkeypatch):
    scenario = _scenario(source)
    if scenario.prepare is not None:
        scenario.prepare(monkeypatch)
    switches = {f"{name}.enabled": name in scenario.sections for name in sections()}
    exporter = exporter_factory(exporter_settings(
        [], **switches, **{"state.replica_id": "golden", **scenario.overrides}))
    scenario.feed(exporter)
    text = _masked(exporter.get("/metrics").text)
    golden = GOLDEN / f"{source}.prom"
    if UPDATE:
        golden.write_text(text)
    assert golden.is_file(), f"no {golden.name}: run `make golden` and review it"
    assert text == golden.read_text(), f"{golden.name} differs: run `make golden`, review, commit"
