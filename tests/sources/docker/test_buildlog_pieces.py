"""Reading a piece of whole lines in place (``feed_data``) is reading its relevant lines one by
one (``feed``): the same builds, counts, names and timestamps, on every real log we hold.

The in-place path runs only on plain ASCII without colour codes; the variants below make each
piece of a log take either path (CRLF, a colour code, a non-ASCII byte, small pieces that cut
through runs of output), so both are held to the line-by-line result.
"""

from __future__ import annotations

import io

import pytest

from cachewatch.sources.docker.buildlog import BuildSplitter, complete_lines, stream_lines

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
