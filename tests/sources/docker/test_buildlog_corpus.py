"""Real build logs from public CI runs and projects, each with a hand-counted truth file.

``tests/fixtures/buildlogs/real/<name>.log`` + ``<name>.truth.json`` (its README lists the
sources and how each log was taken). Every log is held to its truth exactly: lookups, hits,
misses, cache buster (as normalised), whether it was cut off, and the build's status.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cachewatch.sources.docker.buildlog import (
    BuildLogParser,
    normalise_instruction,
    parse_bytes,
    parse_lines,
    stream_lines,
)

from support import FIXTURES

REAL = FIXTURES / "buildlogs" / "real"
TRUTHS = sorted(REAL.glob("*.truth.json"))

def _name(truth: Path) -> str:
    return truth.name.removesuffix(".truth.json")


def _case(truth: Path) -> tuple[dict, object]:
    expected = json.loads(truth.read_text())
    summary = parse_bytes((REAL / f"{_name(truth)}.log").read_bytes(), image="corpus")
    return expected, summary




def test_the_corpus_is_there():
    assert len(TRUTHS) >= 20  # real logs with a hand count: the point of this file


@pytest.mark.parametrize("truth", TRUTHS, ids=_name)
def test_counts_buster_and_cut_off_match_the_hand_count(truth):
    expected, summary = _case(truth)
    buster = expected["cache_buster"]
    assert summary.format == expected["format"]
    assert (summary.lookups, summary.hits, summary.misses) == \
        (expected["lookups"], expected["hits"], expected["misses"])
    assert summary.cache_buster == (normalise_instruction(buster) if buster else None)
    assert summary.truncated == expected["truncated"]


@pytest.mark.parametrize("truth", TRUTHS, ids=_name)
def test_status_matches_the_hand_count(truth):
    expected, summary = _case(truth)
    assert summary.status == expected["status"]


@pytest.mark.parametrize("truth", TRUTHS, ids=_name)
def test_the_fast_path_reads_real_logs_as_every_line_does(truth):
    """The fast path skips step output in C: on every real log, whatever the chunking, it
    must give what reading every line gives."""
    data = (REAL / f"{_name(truth)}.log").read_bytes()
    slow = parse_lines(data.splitlines()).to_dict()
    for chunk_size in (3, 4096):
        parser = BuildLogParser()
        for line in stream_lines(io.BytesIO(data), chunk_size=chunk_size):
            parser.feed(line)
        assert parser.finish().to_dict() == slow
