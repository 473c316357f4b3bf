"""Any bytes in, a clear summary out: never an exception, bounded memory, numbers the exporter
accepts. Binary, invalid UTF-8, CRLF and CR line ends, endless lines, build lines mixed with
noise behind any prefix."""

from __future__ import annotations

import io
import json
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachewatch.sources.docker.buildlog import (
    LINE_KINDS,
    MAX_LINE_BYTES,
    BuildLogParser,
    BuildSummary,
    parse_bytes,
    stream_lines,
)
from cachewatch.sources.docker.submission import SubmittedSummary

from support import FIXTURES

REAL = sorted((FIXTURES / "buildlogs").rglob("*.log"))
REAL_LINES = sorted({line for path in REAL for line in path.read_bytes().splitlines()})
EXAMPLES = [kind.example.split(" / ")[0].encode() for kind in LINE_KINDS]
PREFIXES = [b"", b"2025-01-06T09:50:04.2322193Z ", b"2024/03/29 14:00:00 ", b"[INFO] [x] ",
            b" DEBUG [b771957d] \t", b"9999-99-99T99:99:99Z ", b"0001-01-01T00:00:00Z "]


def assert_clear(summary: BuildSummary) -> None:
    """What every summary must be, whatever came in."""
    assert summary.status in ("success", "failed", "cancelled")
    assert summary.format in ("buildkit-plain", "buildkit-rawjson", "legacy", "unknown")
    assert 0 <= summary.hits <= summary.lookups <= summary.steps
    assert summary.hits + summary.misses == summary.lookups
    assert (summary.cache_buster is None) == (summary.cache_buster_step is None)
    assert summary.cache_buster is None or summary.misses > 0
    json.dumps(summary.to_dict(), allow_nan=False)
    SubmittedSummary.model_validate(summary.to_dict())  # what the exporter's API accepts


def parse_stream(data: bytes, chunk_size: int) -> BuildSummary:
    parser = BuildLogParser()
    for line in stream_lines(io.BytesIO(data), chunk_size=chunk_size):
        parser.feed(line)
    return parser.finish("x")


@st.composite
def noisy_logs(draw: st.DrawFn) -> bytes:
    """Build lines (the table's examples, real logs' lines), cut, mutated or not, with
    prefixes, random text and bytes between, joined by any line end."""
    line = st.one_of(st.sampled_from(EXAMPLES), st.sampled_from(REAL_LINES),
                     st.binary(max_size=120), st.text(max_size=80).map(str.encode))
    lines = draw(st.lists(st.tuples(st.sampled_from(PREFIXES), line,
                                    st.sampled_from([b"\n", b"\r\n", b"\r"])), max_size=60))
    return b"".join(prefix + body + end for prefix, body, end in lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(noisy_logs(), st.integers(min_value=1, max_value=4096))
def test_noisy_logs_give_a_clear_summary(data, chunk_size):
    assert_clear(parse_stream(data, chunk_size))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=4096))
def test_any_bytes_give_a_clear_summary(data):
    assert_clear(parse_bytes(data))


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_crlf_and_invalid_utf8_read_like_the_clean_log(path):
    data = path.read_bytes()
    clean = parse_bytes(data)
    for mangled in (data.replace(b"\n", b"\r\n"),
                    data.replace(b"\n", b"\n\xff\xfe\x00 not utf-8\n"),
                    data.replace(b"\n", b"\x1b[0m\n")):  # colour codes
        summary = parse_bytes(mangled)
        assert (summary.lookups, summary.hits, summary.cache_buster, summary.status,
                summary.truncated) == (clean.lookups, clean.hits, clean.cache_buster,
                                       clean.status, clean.truncated), path.name


class Endless:
    """A stream of ``size`` bytes of one line without a newline, then ``tail``: never held
    in memory at once."""

    def __init__(self, size: int, tail: bytes) -> None:
        self.left, self.tail = size, tail
        self.block = b"#1 Step 1/2 : {" * (1 << 16)  # every marker the scanner looks for

    def read(self, _n: int) -> bytes:
        if self.left > 0:
            self.left -= len(self.block)
            return self.block
        tail, self.tail = self.tail, b""
        return tail


def test_a_1_gb_line_is_cut_and_skipped_in_bounded_memory():
    tracemalloc.start()
    try:
        parser = BuildLogParser()
        for line in stream_lines(Endless(1 << 30, b"\n#2 [1/1] RUN make\n#2 CACHED\n")):
            assert len(line) <= MAX_LINE_BYTES
            parser.feed(line)
        summary = parser.finish()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024
    assert (summary.lookups, summary.hits) == (1, 1)
    assert_clear(summary)


def test_steps_and_names_are_capped_so_memory_stays_bounded():
    many = b"".join(b"#%d [%d/99999] RUN make\n#%d DONE 1.0s\n" % (n, n, n)
                    for n in range(1, 10_501))
    summary = parse_bytes(many)
    assert summary.steps == 10_000  # the cap: a real Dockerfile has tens
    assert_clear(summary)
    long = parse_bytes(b"#1 [1/1] RUN " + b"x" * (MAX_LINE_BYTES - 20) + b"\n#1 DONE 1.0s\n")
    assert len(long.records[0]["name"]) <= 2048
    assert (long.lookups, long.cache_buster) == (1, None)
