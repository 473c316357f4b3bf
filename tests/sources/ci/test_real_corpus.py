"""Real CI job logs from public repositories and issue threads, each with a hand-counted truth.

``tests/fixtures/cilogs/real/<name>.log`` + ``<name>.truth.json`` (its README says where each
log comes from and how it was taken). The truth was counted by hand before the reader ran on
the log. Every log is held to it exactly: each restore's CI, cache name, result and bytes (and,
where the log gives one, that the reason is kept), each save, and the number of Docker builds.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cachewatch.sources.ci.job import read

from support import FIXTURES

REAL = FIXTURES / "cilogs" / "real"
TRUTHS = sorted(REAL.glob("*.truth.json"))


def _name(truth: Path) -> str:
    return truth.name.removesuffix(".truth.json")


def test_the_corpus_is_there():
    assert len(TRUTHS) >= 15  # real job logs with a hand count: the point of this file
    cis = {json.loads(t.read_text())["ci"] for t in TRUTHS}
    assert {"github", "gitlab", "circleci"} <= cis


@pytest.mark.parametrize("truth", TRUTHS, ids=_name)
def test_restores_saves_and_builds_match_the_hand_count(truth):
    expected = json.loads(truth.read_text())
    job = read(io.BytesIO((REAL / f"{_name(truth)}.log").read_bytes()))
    restores = [r.to_dict() for r in job.restores]
    reasons = [r.pop("reason", None) for r in restores]
    wanted = [dict(c) for c in expected["caches"]]
    wanted_reasons = [c.pop("reason", None) for c in wanted]
    assert restores == wanted
    for got, want in zip(reasons, wanted_reasons, strict=True):
        assert (got is None) == (want is None)
        assert want is None or want in got
    assert [s.to_dict() for s in job.saves] == expected["saves"]
    assert len(job.builds) == len(expected["builds"])
