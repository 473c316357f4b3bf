"""Docker build logs -> one record per build step, and the build's cache summary.

Streaming and incremental: feed it lines (bytes or text) as the build prints them; memory
stays bounded whatever the log's size (one record per step, capped; no line kept past its
parsing). The three formats, told apart line by line, whatever prefix CI or a tool adds:

* BuildKit ``--progress=plain``: ``#6 [base 2/4] COPY app.txt /app.txt`` ... ``#6 CACHED`` /
  ``#6 DONE 0.4s`` / ``#6 ERROR: ...`` / ``#6 CANCELED``; vertices interleave, repeat and
  arrive out of order, so steps are keyed by vertex number and the last state wins.
* BuildKit ``--progress=rawjson``: one SolveStatus JSON object per line, keyed by ``digest``.
* The legacy builder: ``Step 3/8 : RUN ...``, `` ---> Using cache``, `` ---> Running in ...``.
  It prints no durations; when fed live, step durations come from the clock.

Where to read on: ``kinds`` lists every kind of line and what it does, ``summary`` holds the
counting rules (lookups, hits, misses, cache buster, status, cut-off logs), ``scan`` the
fast path that skips step output in C, ``split`` how a log of several builds (a CI job, a
compose/bake build) is told apart into one summary per build.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

from .kinds import LINE_KINDS
from .model import BuildSummary, Step, normalise_instruction
from .parser import BuildLogParser
from .scan import MAX_LINE_BYTES, complete_lines, relevant_lines, stream_lines
from .split import BuildSplitter
from .times import now

__all__ = ["LINE_KINDS", "MAX_LINE_BYTES", "BuildLogParser", "BuildSplitter", "BuildSummary",
           "Step", "complete_lines", "normalise_instruction", "now", "parse_builds", "parse_bytes",
           "parse_lines", "relevant_lines", "stream_lines"]


def parse_bytes(data: bytes, image: str = "", target: str = "",
                exit_code: int | None = None) -> BuildSummary:
    """Parse a whole log held in memory (a request body), through the fast path."""
    parser = BuildLogParser()
    for piece in complete_lines(io.BytesIO(data)):
        parser.feed_data(piece)
    return parser.finish(image, target, exit_code)


def parse_builds(data: bytes, image: str = "", target: str = "",
                 exit_code: int | None = None, one_command: bool = True) -> list[BuildSummary]:
    """Every build of a whole log held in memory (see ``split``), through the fast path."""
    splitter = BuildSplitter(one_command=one_command)
    for piece in complete_lines(io.BytesIO(data)):
        splitter.feed_data(piece)
    return splitter.finish(image, target, exit_code)


def parse_lines(lines: Iterable[bytes | str], image: str = "", target: str = "",
                exit_code: int | None = None) -> BuildSummary:
    """Parse a log given line by line (every line is looked at)."""
    parser = BuildLogParser()
    for line in lines:
        parser.feed(line)
    return parser.finish(image, target, exit_code)
