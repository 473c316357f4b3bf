"""The fast path: the few lines of a large log that the parser needs, found by C code.

Step output is the bulk of a large log and changes nothing but one fact per step (it ran).
``relevant_lines`` never hands it to Python line by line: one regex search over a whole chunk
finds the markers of every kind in ``kinds.LINE_KINDS`` that matters (a superset: the parser
decides), and swallows each run of one vertex's output lines in C, keeping only its number.
Each vertex that printed output in the chunk is then passed on as one ``#<n> 0`` line.

Memory is bounded whatever comes in: a line longer than ``MAX_LINE_BYTES`` is cut there and its
rest skipped, so a log without newlines cannot grow a buffer without bound.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import IO, Any

MAX_LINE_BYTES = 256 * 1024  # longer lines are cut; a build step name is never this long

# Every alternative starts with a rare byte ('#', 'S', '>', 'T', 'C', 'A', 'f', 'E', '{', 'u',
# '"'), so the regex engine only stops there. A vertex's output lines, prefixed or not, are one
# match.
_MARKERS = re.compile(
    rb"#(?P<vertex>\d+) (?:(?P<output>\d)(?:[^\n]*\n[^#\n]*#(?P=vertex) \d)*|(?!sha256:))"
    rb"|Step \d|STEP \d|>(?<=-->)|Successfully (?:built|tagged) |The command '|COMMIT"
    rb"|COPY failed|ADD failed|failed to (?:solve|build)|Error: building at STEP"
    rb"|unknown (?:shorthand )?flag: |unable to prepare context: |Cannot connect to the Docker"
    rb'|Error response from daemon: |"docker (?:buildx )?build" requires '
    rb'|\{[ \t]*"(?:[Vv]ertexes|[Ss]tatuses|[Ll]ogs)"'
)


def relevant_lines(data: bytes) -> Iterator[bytes]:
    """The lines of complete-line ``data`` that the parser needs (``\\r`` counts as a break),
    then one ``#<n> 0`` output line per vertex that printed output."""
    data = data.replace(b"\r", b"\n")
    search, find, rfind = _MARKERS.search, data.find, data.rfind
    ran: set[bytes] = set()
    pos = 0
    while (match := search(data, pos)) is not None:
        end = find(b"\n", match.end())
        if end < 0:
            end = len(data)
        if match.group("output") is not None:
            ran.add(match.group("vertex"))  # the rest of its last line is output too
        else:
            start = max(pos, rfind(b"\n", pos, match.start()) + 1)
            yield data[start:end][:MAX_LINE_BYTES]
        pos = end + 1
    for vertex in sorted(ran):
        yield b"#" + vertex + b" 0"


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
