"""The build log parser on its own: real captured logs, BuildKit's rawjson records, any bytes."""

from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachewatch.sources.docker.buildlog import (
    MAX_LINE_BYTES,
    BuildLogParser,
    normalise_instruction,
    parse_lines,
    stream_lines,
)

from support import FIXTURES

LOGS = FIXTURES / "buildlogs"
REAL_LINES = [line for path in sorted(LOGS.glob("*.log"))
              for line in path.read_bytes().splitlines()]


def parse(name: str, **kwargs):
    return parse_lines((LOGS / name).read_bytes().splitlines(), image="app", **kwargs)


def test_captured_buildkit_cold_build_has_no_hits_and_no_buster():
    summary = parse("buildkit-cold.log")
    assert (summary.format, summary.status) == ("buildkit-plain", "success")
    assert (summary.lookups, summary.hits, summary.misses) == (6, 0, 6)
    assert summary.cache_buster is None
    internal = [r for r in summary.records if r["kind"] == "internal"]
    assert {r["name"] for r in internal} >= {"[internal] load build definition from Dockerfile",
                                             "exporting to image"}


def test_captured_buildkit_busted_build_names_the_copy():
    summary = parse("buildkit-busted.log")
    assert (summary.lookups, summary.hits) == (6, 3)
    assert summary.cache_buster == "COPY app.txt /app.txt"
    assert summary.cache_buster_step == "[base 2/4] COPY app.txt /app.txt"
    assert summary.executed_seconds == summary.rebuild_seconds == 0.4


def test_captured_failed_build():
    summary = parse("buildkit-failed.log")
    assert summary.status == "failed"
    assert "exit code: 3" in summary.error
    assert summary.records[-1]["status"] == "error"


def test_captured_legacy_build():
    summary = parse("legacy-busted.log")
    assert summary.format == "legacy"
    assert (summary.lookups, summary.hits) == (6, 3)
    assert summary.cache_buster == "COPY app.txt /app.txt"
    froms = [r for r in summary.records if r["kind"] == "from"]
    assert [r["stage"] for r in froms] == ["base", "stage-1"]


def _vertex(digest: str, name: str, **state) -> dict:
    return {"digest": digest, "inputs": [], "name": name, **state}


def test_rawjson_records_dedupe_by_digest_and_keep_the_last_state():
    """Records shaped like BuildKit's SolveStatus JSON (``--progress=rawjson``), which needs
    buildx and cannot run here: vertexes repeat as they progress, with RFC 3339 nanosecond
    timestamps, ``cached`` and ``error`` fields, and statuses/logs that carry no step state."""
    t0, t1 = "2026-11-24T10:00:00.000000001Z", "2026-11-24T10:00:02.500000009Z"
    lines = [
        {"vertexes": [_vertex("sha256:a", "[internal] load build definition from Dockerfile",
                              started=t0, completed=t0)]},
        {"vertexes": [_vertex("sha256:b", "[1/3] FROM docker.io/library/alpine:3.20",
                              started=t0, completed=t0, cached=True)]},
        {"vertexes": [_vertex("sha256:c", "[2/3] COPY requirements.txt /app/", started=t0)]},
        {"statuses": [{"id": "x", "vertex": "sha256:c", "current": 10}], "logs": []},
        {"vertexes": [_vertex("sha256:c", "[2/3] COPY requirements.txt /app/", started=t0,
                              completed=t0, cached=True)]},
        {"vertexes": [_vertex("sha256:d", "[3/3] RUN pip install -r /app/requirements.txt",
                              started=t0)]},
        {"logs": [{"vertex": "sha256:d", "stream": 1, "data": "Q29sbGVjdGluZw=="}]},
        {"vertexes": [_vertex("sha256:d", "[3/3] RUN pip install -r /app/requirements.txt",
                              started=t0, completed=t1)]},
        {"vertexes": [_vertex("sha256:e", "exporting to image", started=t1, completed=t1)]},
    ]
    summary = parse_lines([json.dumps(line) for line in lines], image="app")
    assert summary.format == "buildkit-rawjson"
    assert summary.steps == 5
    assert (summary.lookups, summary.hits, summary.misses) == (2, 1, 1)
    assert summary.cache_buster == "RUN pip install -r /app/requirements.txt"
    assert abs(summary.executed_seconds - 2.5) < 1e-6


def test_rawjson_error_and_cancel():
    t0 = "2026-11-24T10:00:00Z"
    lines = [
        {"vertexes": [_vertex("sha256:a", "[1/2] RUN make", started=t0, completed=t0,
                              error="process \"/bin/sh -c make\" did not complete: exit code: 2")]},
        {"vertexes": [_vertex("sha256:b", "[2/2] RUN make test", started=t0, completed=t0,
                              error="context canceled")]},
    ]
    summary = parse_lines([json.dumps(line) for line in lines])
    assert summary.status == "failed"
    assert [r["status"] for r in summary.records] == ["error", "canceled"]
    assert summary.lookups == 1  # a cancelled step never ran: no lookup


def test_plain_retried_vertex_and_out_of_order_lines():
    lines = [
        "#5 [stage-a 2/2] RUN make", "#6 [stage-b 2/2] RUN make docs", "#6 CACHED",
        "#5 ERROR: network blip", "#5 [stage-a 2/2] RUN make", "#5 1.20 building",
        "#5 DONE 3.1s", "#7 [stage-a 1/2] FROM docker.io/library/golang", "#7 CACHED",
    ]
    summary = parse_lines(lines)
    steps = {r["name"]: r for r in summary.records}
    assert steps["[stage-a 2/2] RUN make"]["status"] == "done"
    assert steps["[stage-a 2/2] RUN make"]["duration"] == 3.1
    assert summary.status == "success"
    assert (summary.lookups, summary.hits) == (2, 1)
    assert summary.cache_buster == "RUN make"


def test_cancelled_plain_build():
    summary = parse_lines(["#4 [1/2] COPY . /src", "#4 CACHED", "#5 [2/2] RUN sleep 100",
                           "#5 CANCELED", "ERROR: failed to solve: context canceled"])
    assert summary.records[1]["status"] == "canceled"
    assert summary.status == "failed"  # BuildKit said the solve failed
    assert parse_lines(["#5 [1/1] RUN x", "#5 CANCELED"]).status == "cancelled"
    assert parse_lines(["#5 [1/1] RUN x", "#5 DONE 1.0s"], exit_code=130).status == "cancelled"


def test_normalised_instruction_drops_comments_hashes_and_spacing():
    assert normalise_instruction("COPY . /app # 3f2a9c1b") == "COPY . /app"
    assert normalise_instruction("RUN  echo   sha256:0123456789abcdef0123") == \
        "RUN echo sha256:<hash>"
    assert normalise_instruction("ADD https://x/y/0123456789abcdef01.tar.gz /") == \
        "ADD https://x/y/<hash>.tar.gz /"
    assert len(normalise_instruction("RUN " + "x" * 500)) == 100


def test_long_lines_and_invalid_utf8_are_bounded_and_never_fatal():
    data = b"#1 [1/1] RUN \xff\xfe\n" + b"x" * (3 * MAX_LINE_BYTES) + b"\n#1 CACHED\n"
    lines = list(stream_lines(io.BytesIO(data), chunk_size=4096))
    assert max(len(line) for line in lines) <= MAX_LINE_BYTES
    summary = parse_lines(lines)
    assert (summary.lookups, summary.hits) == (1, 1)


def test_tee_sees_every_byte_unchanged():
    data = b"".join(line + b"\n" for line in REAL_LINES) + b"\xff\x00 junk\r\n#9 CACHED"
    seen = bytearray()
    lines = list(stream_lines(io.BytesIO(data), chunk_size=777, tee=seen.extend))
    assert bytes(seen) == data
    assert lines[-1] == b"#9 CACHED"


@settings(max_examples=50)
@given(st.integers(min_value=1, max_value=5000))
def test_the_fast_path_reads_real_logs_as_the_line_by_line_parser_does(chunk_size):
    """stream_lines skips step output in C; whatever the chunking, the result is the same."""
    for path in sorted(LOGS.glob("*.log")):
        data = path.read_bytes()
        slow = parse_lines(data.splitlines(), image="x")
        parser = BuildLogParser()
        for line in stream_lines(io.BytesIO(data), chunk_size=chunk_size):
            parser.feed(line)
        fast = parser.finish("x")
        assert fast.records == slow.records, path.name
        assert fast.cache_buster == slow.cache_buster


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(REAL_LINES), st.binary(max_size=200)), max_size=80),
       st.randoms(use_true_random=False))
def test_random_and_mutated_real_logs_never_raise_or_overcount(lines, rnd):
    mutated = []
    for line in lines:
        if line and rnd.random() < 0.3:
            cut = rnd.randrange(len(line))
            line = line[:cut] + bytes([rnd.randrange(256)]) + line[cut + 1:]
        mutated.append(line)
    parser = BuildLogParser()
    for line in mutated:
        parser.feed(line)
    summary = parser.finish("x", exit_code=rnd.choice([None, 0, 1]))
    assert 0 <= summary.hits <= summary.lookups <= summary.steps
    assert summary.hits + summary.misses == summary.lookups
    assert summary.executed_seconds >= 0


def test_a_deeply_nested_rawjson_line_is_skipped_not_fatal():
    line = b'{"vertexes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    summary = parse_lines([line, b"#1 [1/1] RUN x", b"#1 CACHED"])
    assert (summary.lookups, summary.hits) == (1, 1)


def test_lines_after_an_over_long_line_and_a_bare_cr_are_kept():
    data = (b"#1 [1/1] RUN x\n" + b"y" * (MAX_LINE_BYTES + 5000) + b"\n#1 DONE 1.0s\nprogress\r\n")
    parser = BuildLogParser()
    for line in stream_lines(io.BytesIO(data), chunk_size=4096):
        parser.feed(line)
    summary = parser.finish()
    assert summary.records[0]["status"] == "done"
    assert summary.lookups == 1


def test_multi_platform_step_names_are_steps():
    summary = parse_lines(["#5 [linux/amd64 builder 2/5] RUN make", "#5 DONE 2.0s",
                           "#6 [linux/arm64 2/5] RUN make", "#6 CACHED"])
    assert summary.lookups == 2
    assert [r["stage"] for r in summary.records] == ["builder", ""]


def test_a_copy_from_a_busted_stage_is_not_the_buster_even_when_printed_first():
    """Parallel stages: BuildKit may print the final stage's COPY --from before the stage it
    copies from; the buster is still the step whose own input changed."""
    summary = parse_lines([
        "#4 [deps 1/2] RUN python3 -m venv /opt/venv", "#4 CACHED",
        "#9 [stage-2 1/2] COPY --from=deps /opt/venv /opt/venv", "#9 CACHED",
        "#10 [stage-2 2/2] COPY --from=app /opt/app /opt/app", "#10 DONE 0.1s",
        "#7 [app 1/2] COPY exporter ./exporter", "#7 DONE 0.1s",
        "#8 [app 2/2] RUN pip install --target /opt/app .", "#8 DONE 3.0s",
    ])
    assert summary.cache_buster == "COPY exporter ./exporter"
