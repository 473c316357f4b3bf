"""The fast path: the few lines of a large log that the parser needs, found by C code.

Step output is the bulk of a large log and changes nothing but one fact per step (it ran).
``relevant_lines`` never hands it to Python line by line. A run of one vertex's output lines
(``#7 12.3 ...``) is one regex match, which compares each next line's start to the vertex in C;
the run is passed on as its first line cut after ``#<n> <digit>``, in its place, so the fact
"it ran" reaches the build it belongs to. A run is one vertex number, whatever prefix each line
carries: where two parallel CI jobs interleave output of the same vertex number, the second
job's lines join the first's run (its own DONE or CACHED line still reaches it). A bare
BuildKit line is recognised where it starts; any other line is found by one regex search for
the markers of every kind in ``kinds.LINE_KINDS`` that matters (a superset: the parser
decides), whatever prefix precedes them.

Memory is bounded whatever comes in: a line longer than ``MAX_LINE_BYTES`` is cut there and its
rest skipped, so a log without newlines cannot grow a buffer without bound.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import IO, Any

MAX_LINE_BYTES = 256 * 1024  # longer lines are cut; a build step name is never this long

# The markers of every kind but BuildKit's ``#<n> ``, also searched in decoded text (``inplace``).
# Every alternative starts with a rare byte ('#', 'S', '>', 'T', 'C', 'A', 'f', 'E', '{', 'u',
# '"'), so the regex engine only stops there.
OTHER_MARKERS = (
    r"Step \d|STEP \d|>(?<=-->)|Successfully (?:built|tagged) |The command '|COMMIT"
    r"|COPY failed|ADD failed|failed to (?:solve|build)|Error: building at STEP"
    r"|unknown (?:shorthand )?flag: |unable to prepare context: |Cannot connect to the Docker"
    r'|Error response from daemon: |"docker (?:buildx )?build" requires '
    r'|\{[ \t]*"(?:[Vv]ertexes|[Ss]tatuses|[Ll]ogs)"'
)
_MARKERS = re.compile(
    rb"#(?P<vertex>\d+) (?:(?P<output>\d)|(?!sha256:))|" + OTHER_MARKERS.encode())
# A BuildKit line at the start of a line: output (a digit: its timestamp) or anything else
# but layer progress (``#6 sha256:...``, which the parser ignores).
_VERTEX_LINE = re.compile(rb"#(?P<vertex>\d+) (?:(?P<output>\d)|(?!sha256:))")
# A run of one vertex's output lines from its first ``#<n> <digit>``: bare lines only (``_BARE``:
# the regex engine compares each next line's start to the vertex, it never returns to Python),
# or behind any prefix (``_PREFIXED``: ``[^#\n]*``, a CI timestamp, a branch label). Possessive
# (``*+``): nothing after a ``[^\n]*`` can give back, so the engine keeps no backtrack points.
BARE_RUN = r"(?:[^\n]*+\n#{vertex} \d)*+"  # what follows a run's first ``#<n> <digit>``
PREFIXED_RUN = r"(?:[^\n]*+\n[^#\n]*+#{vertex} \d)*+"
_BARE = re.compile(rb"#(\d+) \d" + BARE_RUN.format(vertex=r"\1").encode())
_PREFIXED = re.compile(rb"#(\d+) \d" + PREFIXED_RUN.format(vertex=r"\1").encode())


def relevant_lines(data: bytes) -> Iterator[bytes]:
    """The lines of complete-line ``data`` that the parser needs (``\\r`` counts as a break);
    a run of one vertex's output lines comes as its first line, cut after ``#<n> <digit>``."""
    if b"\r" in data:
        data = data.replace(b"\r", b"\n")
    for start, end in relevant_spans(data):
        yield data[start:end]


def relevant_spans(data: bytes) -> Iterator[tuple[int, int]]:
    """Where ``relevant_lines`` are in ``data`` (complete lines, no ``\\r``): (start, end) of
    each, cut at ``MAX_LINE_BYTES``. A caller holding ``data`` decoded reads them in place."""
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
            bare = match.start() == start
            if not bare or vertex not in passed:  # a run is passed on as its first line
                yield start, min(match.end(), start + MAX_LINE_BYTES)
            if bare:
                passed.add(vertex)
            run = (_BARE if bare else _PREFIXED).match(data, match.start())
            end = find(b"\n", run.end() if run else match.end())
        else:
            end = find(b"\n", start)
            yield start, min(size if end < 0 else end, start + MAX_LINE_BYTES)
            passed.clear()
        pos = size if end < 0 else end + 1


def complete_lines(stream: IO[bytes], chunk_size: int = 1 << 20,
                   tee: Callable[[bytes], Any] | None = None) -> Iterator[bytes]:
    """A binary stream as pieces of whole lines (the last may lack its line end), in bounded
    memory: a line longer than ``MAX_LINE_BYTES`` is cut there. ``tee`` sees every byte first."""
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
        cut = chunk.rfind(b"\n")  # the last line break: a \r only counts after the last \n
        cut = max(cut, chunk.rfind(b"\r", cut + 1))
        if cut < 0:
            pending += chunk
        else:  # one copy: the piece is the pending line's head and the chunk's whole lines
            if pending or cut + 1 < len(chunk):
                chunk, pending = b"".join((pending, memoryview(chunk)[:cut + 1])), chunk[cut + 1:]
            else:
                pending = b""
            yield chunk
        if len(pending) > MAX_LINE_BYTES:
            pending, overflow = pending[:MAX_LINE_BYTES], True
    if pending:
        yield pending


def stream_lines(stream: IO[bytes], chunk_size: int = 1 << 20,
                 tee: Callable[[bytes], Any] | None = None) -> Iterator[bytes]:
    """Relevant lines of a binary stream in bounded memory; ``tee`` sees every byte first."""
    for data in complete_lines(stream, chunk_size, tee):
        yield from relevant_lines(data)
