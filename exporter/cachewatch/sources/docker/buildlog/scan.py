"""The fast path: the few lines of a large log that the parser needs, found by C code.

Step output is the bulk of a large log and changes nothing but one fact per step (it ran).
``relevant_lines`` never hands it to Python line by line. A run of one vertex's output lines
(``#7 12.3 ...``, the bulk of a BuildKit log) is skipped by one regex search that stops at the
first line that is not that vertex's output; the run is passed on as its first line's
``#<n> <digit>``, in its place, so the fact "it ran" reaches the build it belongs to. Any other
line is found by one regex search for the markers of every kind in ``kinds.LINE_KINDS`` that
matters (a superset: the parser decides), whatever prefix precedes them.

Memory is bounded whatever comes in: a line longer than ``MAX_LINE_BYTES`` is cut there and its
rest skipped, so a log without newlines cannot grow a buffer without bound.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import IO, Any

MAX_LINE_BYTES = 256 * 1024  # longer lines are cut; a build step name is never this long
MAX_CACHED_RUNS = 4096  # compiled run patterns kept (one per vertex number seen)

# Every alternative starts with a rare byte ('#', 'S', '>', 'T', 'C', 'A', 'f', 'E', '{', 'u',
# '"'), so the regex engine only stops there.
_MARKERS = re.compile(
    rb"#(?P<vertex>\d+) (?:(?P<output>\d)|(?!sha256:))"
    rb"|Step \d|STEP \d|>(?<=-->)|Successfully (?:built|tagged) |The command '|COMMIT"
    rb"|COPY failed|ADD failed|failed to (?:solve|build)|Error: building at STEP"
    rb"|unknown (?:shorthand )?flag: |unable to prepare context: |Cannot connect to the Docker"
    rb'|Error response from daemon: |"docker (?:buildx )?build" requires '
    rb'|\{[ \t]*"(?:[Vv]ertexes|[Ss]tatuses|[Ll]ogs)"'
)
# A BuildKit line at the start of a line: output (a digit: its timestamp) or anything else
# but layer progress (``#6 sha256:...``, which the parser ignores).
_VERTEX_LINE = re.compile(rb"#(?P<vertex>\d+) (?:(?P<output>\d)|(?!sha256:))")
_runs: dict[bytes, tuple[re.Pattern[bytes], re.Pattern[bytes]]] = {}


def _run_patterns(vertex: bytes) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """For vertex ``n``: the end of a run of its bare output lines (the first line break not
    followed by ``#n <digit>``: a search that stops at line breaks only), and the rest of a
    run of its output lines behind any prefix (``[^#\\n]*``: a CI timestamp, a branch)."""
    patterns = _runs.get(vertex)
    if patterns is None:
        if len(_runs) >= MAX_CACHED_RUNS:
            _runs.clear()
        patterns = _runs[vertex] = (
            re.compile(rb"\n(?!#" + vertex + rb" \d)"),
            re.compile(rb"(?:[^\n]*\n[^#\n]*#" + vertex + rb" \d)*"))
    return patterns


def relevant_lines(data: bytes) -> Iterator[bytes]:
    """The lines of complete-line ``data`` that the parser needs (``\\r`` counts as a break);
    a run of one vertex's output lines comes as its first line, cut after ``#<n> <digit>``."""
    if b"\r" in data:
        data = data.replace(b"\r", b"\n")
    size, find, rfind = len(data), data.find, data.rfind
    vertex_line, search = _VERTEX_LINE.match, _MARKERS.search
    passed: set[bytes] = set()  # bare runs passed on since the last other line
    pos = 0
    while pos < size:
        if data[pos] == 0x23 and (match := vertex_line(data, pos)) is not None:
            start = pos
        else:
            match = search(data, pos)
            if match is None:
                return
            start = max(pos, rfind(b"\n", pos, match.start()) + 1)
        vertex = match["vertex"]
        if vertex is not None and match["output"] is not None:
            if match.start() == start:  # a bare run: skipped to its end in C
                if vertex not in passed:
                    passed.add(vertex)
                    yield data[start:match.end()]
                end = _run_patterns(vertex)[0].search(data, start)
                pos = size if end is None else end.end()
                continue
            # behind a prefix: the run is its first line
            yield data[start:match.end()][:MAX_LINE_BYTES]
            rest = _run_patterns(vertex)[1].match(data, match.end())
            end = find(b"\n", rest.end() if rest else match.end())
        else:
            end = find(b"\n", start)
            yield data[start:size if end < 0 else end][:MAX_LINE_BYTES]
        passed.clear()
        pos = size if end < 0 else end + 1


def stream_lines(stream: IO[bytes], chunk_size: int = 1 << 20,
                 tee: Callable[[bytes], Any] | None = None) -> Iterator[bytes]:
    """Relevant lines of a binary stream in bounded memory; ``tee`` sees every byte first."""
    read = getattr(stream, "read1", stream.read)
    pending = b""
    overflow = False
    while chunk := read(chunk_size):
        if tee is not None:
            tee(chunk)
        if overflow:
            breaks = [i for i in (chunk.find(b"\n"), chunk.find(b"\r")) if i >= 0]
            if not breaks:
                continue
            chunk, overflow = chunk[min(breaks):], False
        data = pending + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
        if cut < 0:
            pending = data
        else:
            yield from relevant_lines(data[: cut + 1])
            pending = data[cut + 1:]
        if len(pending) > MAX_LINE_BYTES:
            pending, overflow = pending[:MAX_LINE_BYTES], True
    if pending:
        yield from relevant_lines(pending)
