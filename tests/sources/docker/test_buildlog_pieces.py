"""Reading a piece of whole lines in place (``feed_data``) is reading its relevant lines one by
one (``feed``): the same builds, counts, names and timestamps, on every real log we hold.

The in-place path runs only on plain ASCII without colour codes; the variants below make each
piece of a log take either path (CRLF, a colour code, a non-ASCII byte, small pieces that cut
through runs of output), so both are held to the line-by-line result.
"""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachewatch.sources.docker.buildlog import (
    BuildLogParser,
    BuildSplitter,
    complete_lines,
    stream_lines,
)

from support import FIXTURES

LOGS = sorted((FIXTURES / "buildlogs").glob("**/*.log")) + sorted(
    (FIXTURES / "cilogs").glob("**/*.log"))


def variants(data: bytes) -> dict[str, bytes]:
    return {
        "as captured": data,
        "crlf": data.replace(b"\n", b"\r\n"),
        "a colour code": b"\x1b[1mstarting\x1b[0m\n" + data,
        "a non-ascii line": "démarrage ✓\n".encode() + data,
    }


def line_by_line(data: bytes, chunk_size: int) -> list[dict]:
    splitter = BuildSplitter(one_command=False)
    for line in stream_lines(io.BytesIO(data), chunk_size):
        splitter.feed(line)
    return [summary.to_dict() for summary in splitter.finish("fallback")]


def by_pieces(data: bytes, chunk_size: int) -> list[dict]:
    splitter = BuildSplitter(one_command=False)
    for piece in complete_lines(io.BytesIO(data), chunk_size):
        splitter.feed_data(piece)
    return [summary.to_dict() for summary in splitter.finish("fallback")]


def test_the_corpus_is_there():
    assert len(LOGS) >= 40


@pytest.mark.parametrize("log", LOGS, ids=lambda path: path.name)
@pytest.mark.parametrize("chunk_size", [1 << 20, 257])
def test_reading_in_place_is_reading_line_by_line(log, chunk_size):
    for name, data in variants(log.read_bytes()).items():
        expected = line_by_line(data, chunk_size)
        assert by_pieces(data, chunk_size) == expected, name


def test_a_prefixed_line_keeps_its_timestamp_when_read_in_place():
    log = (b"2024-05-01T10:00:00.0000000Z #1 [1/2] RUN make\n"
           b"2024-05-01T10:00:00.0000000Z #1 0.1 output\n"
           b"2024-05-01T10:00:07.5000000Z #1 DONE 7.5s\n")
    [summary] = by_pieces(log, 1 << 20)
    assert summary["duration_seconds"] == 7.5
    assert summary["misses"] == 1
    assert by_pieces(log, 1 << 20) == line_by_line(log, 1 << 20)


# BuildKit lines of a few vertices (``#0`` is the banner's; ``#00`` is not), legacy and prefixed
# lines: what a name line's block reads on over, and what ends it.
TEMPLATES = ("#{} [1/2] RUN make", "#{} [internal] load build definition from Dockerfile",
             "#{} transferring context: 2B done", "#{} sha256:0a96bd 3.1MB / 48MB", "#{} 0.12 out",
             "#{} DONE 0.5s", "#{} DONE", "#{} CACHED", "#{} ERROR: exit code: 1", "#{} CANCELED",
             "#{} naming to docker.io/library/app:1", "#{} extracting sha256:ab", "#{} ...",
             "#{} [output clipped, log limit 2MiB reached]", "#{} ", "#{}  spaced", "#{} DONEISH",
             "#{} [web builder 2/5] RUN make")
OTHERS = (b"", b"Step 1/2 : RUN make", b" ---> Using cache", b" ---> 58d55bcc9f5f",
          b"2024-05-01T10:00:00Z #1 DONE 1.0s", b"2024-05-01T10:00:03Z #1 0.5 out",
          b"[web] #1 [1/2] RUN make", b"ERROR: failed to solve: exit code: 1")
LINES = st.one_of(
    st.builds(lambda template, vertex: template.format(vertex).encode(),
              st.sampled_from(TEMPLATES), st.sampled_from(("1", "1", "1", "2", "0", "00"))),
    st.sampled_from(OTHERS))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINES, max_size=30))
def test_blocks_read_in_place_are_their_lines_read_one_by_one(lines):
    data = b"\n".join(lines) + b"\n"
    assert by_pieces(data, 1 << 20) == line_by_line(data, 1 << 20)


@pytest.mark.parametrize("log", [
    b"#1 [1/2] RUN make\n#1 sha256:0a\n#1 0.1 out\n#1 CANCELED\n",  # ran, then cancelled: a miss
    b"#1 [1/2] RUN make\n#1 0.1 out\n#1 0.2 more\n",  # cut off while running
    b"#1 [1/2] RUN make\n#1 extracting sha256:ab\n#1 DONE 0.3s\n",  # an imported layer: a hit
    b"#1 [1/2] RUN make\n#1 transferring context: 2B\n#1 0.1 out\n#1 ERROR: boom\n",
    b"#0 [output clipped]\n#0 building with default\n#0 [1/2] RUN make\n#0 CACHED\n",
    b"#2 DONE 1.0s\n#2 resolve image config\n#2 [1/2] RUN make\n#2 CACHED\n",
], ids=["cancelled", "cut-off", "imported", "error", "banner-vertex", "done-before-name"])
def test_a_blocks_lines_count_as_they_do_one_by_one(log):
    assert by_pieces(log, 1 << 20) == line_by_line(log, 1 << 20)
    assert by_pieces(log, 7) == line_by_line(log, 7)


def test_a_block_past_the_step_cap_reads_its_lines_one_by_one():
    many = b"".join(b"#%d [%d/20000] RUN make\n#%d transferring context: 2B\n#%d sha256:0a\n"
                    b"#%d 0.1 out\n#%d ...\n#%d transferring context: 3B\n#%d DONE 1.0s\n"
                    % ((n,) * 8) for n in range(1, 10_011))
    fast, slow = BuildLogParser(), BuildLogParser()
    for piece in complete_lines(io.BytesIO(many)):
        fast.feed_data(piece)
    for line in many.splitlines():
        slow.feed(line)
    assert fast.dropped_steps == slow.dropped_steps == 30  # each name line of 10 vertices
    assert fast.finish().to_dict() == slow.finish().to_dict()
