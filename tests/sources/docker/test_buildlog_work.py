"""The parser's work per MB of a typical log, counted (not timed): a regression guard.

A large build log is mostly step output (``#7 12.3 ...``). The fast path skips it in C, so the
Python work grows with the lines that matter, not with the log. Counting calls (Python
functions and C builtins, under ``sys.setprofile``) is deterministic where timing is not:
reading every line in Python costs about 311,000 calls per MB of this log, the scan about
14,400 and 520 lines handed to a build (24,500 calls and 940 lines before a vertex's name line
read on over its quiet lines, output and closing DONE as one match; 28,000 calls before a piece
of whole lines was decoded once and its lines read in place, 36,000 before a bare output run
became one regex match passed on in place).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from cachewatch.sources.docker.buildlog import BuildLogParser, BuildSplitter, complete_lines
from cachewatch.sources.docker.buildlog.inplace import ACTIONS

from support import FIXTURES

# The benchmark's log: real captured builds, one of them a RUN that prints 2,000 lines.
BLOCK = b"".join(path.read_bytes() for path in sorted((FIXTURES / "buildlogs").glob("*.log")))
LOG = BLOCK * 9  # about 1 MB
# One handler call per line handed to a build (a handler calling another is not counted).
HANDLERS = {handler.__code__ for handler, _ in ACTIONS.values()}
FEEDERS = {BuildLogParser.apply.__code__, BuildSplitter.feed_data.__code__}
MAX_CALLS_PER_MB = 16_000
MAX_LINES_PER_MB = 600  # lines handed to a build; the log has about 18,000 per MB


def calls_to_parse(feed: Callable[[BuildSplitter], None]) -> tuple[int, int]:
    """(calls, lines applied to a build) to parse ``LOG`` as ``feed`` gives it to a splitter."""
    calls = applied = 0

    def count(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal calls, applied
        if event in ("call", "c_call"):
            calls += 1
        if event == "call" and frame.f_code in HANDLERS and frame.f_back.f_code in FEEDERS:
            applied += 1

    splitter = BuildSplitter()
    sys.setprofile(count)
    try:
        feed(splitter)
    finally:
        sys.setprofile(None)
    return calls, applied


def by_pieces(splitter: BuildSplitter) -> None:
    for piece in complete_lines(io.BytesIO(LOG)):
        splitter.feed_data(piece)


def line_by_line(splitter: BuildSplitter) -> None:
    for line in LOG.splitlines():
        splitter.feed(line)


def test_the_fast_path_works_per_line_that_matters_not_per_line_of_output():
    megabytes = len(LOG) / 1e6
    calls, fed = calls_to_parse(by_pieces)
    assert fed / megabytes <= MAX_LINES_PER_MB
    assert calls / megabytes <= MAX_CALLS_PER_MB, f"{calls / megabytes:,.0f} calls per MB"


def test_the_guard_fails_on_reading_every_line_in_python():
    calls, fed = calls_to_parse(line_by_line)
    assert calls / (len(LOG) / 1e6) > 5 * MAX_CALLS_PER_MB
    assert fed / (len(LOG) / 1e6) > 10 * MAX_LINES_PER_MB
