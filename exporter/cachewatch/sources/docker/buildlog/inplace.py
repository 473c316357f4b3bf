"""Reading a piece of plain-ASCII whole lines in place: one regex search per line that matters.

What ``scan.relevant_spans`` then ``kinds.find_marker`` give line by line, in one pass: the
search (``_NEXT``) stops at the next marker of any kind. A bare BuildKit line (``#<n> `` where
its line starts: nearly every line that matters) is read by that same match, its kind the
match's ``lastgroup``, and a run of one vertex's output lines is part of it, so the engine
skips the run in C. Any other marker (one behind a CI prefix, a legacy ``Step``, an arrow)
has its line read by ``find_marker``, exactly as ``relevant_spans`` hands it on.

A bare run is handed on once while no other line comes between (``relevant_spans``' rule);
a line longer than ``MAX_LINE_BYTES`` is cut there before it is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .kinds import find_marker, kinds_led_by
from .scan import BARE_RUN, MAX_LINE_BYTES, OTHER_MARKERS, PREFIXED_RUN


def _vertex_kinds() -> str:
    """The BuildKit kinds in table order; output runs on over the vertex's next output lines.
    Layer progress (``#6 sha256:...``) is no marker: the search goes past it."""
    body = "|".join(
        f"(?P<{k.name}>{k.pattern})" + (BARE_RUN.format(vertex="(?P=vertex)")
                                        if k.name == "output" else "")
        for k in kinds_led_by("#"))
    return rf"#(?P<vertex>\d+) (?!sha256:)(?:{body})"


_NEXT = re.compile(f"{_vertex_kinds()}|{OTHER_MARKERS}")
_PREFIXED = re.compile(r"#(\d+) \d" + PREFIXED_RUN.format(vertex=r"\1"))


def read_ascii(text: str) -> Iterator[tuple[re.Match[str], int]]:
    """The markers of the lines that matter in ``text`` (whole lines, plain ASCII, no
    ``\\r``), each with where its line starts."""
    search, find, rfind, size = _NEXT.search, text.find, text.rfind, len(text)
    passed: set[str] = set()  # bare runs handed on since the last other line
    pos = 0
    while (match := search(text, pos)) is not None:
        at = match.start()
        start = pos if at == pos else rfind("\n", pos, at) + 1 or pos
        kind = match.lastgroup  # None: a marker of no BuildKit kind
        bare = kind is not None and at == start
        if bare and kind == "output":
            if (vertex := match["vertex"]) not in passed:
                passed.add(vertex)
                yield match, start
            end = find("\n", match.end())
        elif bare and match.end() - at < MAX_LINE_BYTES:
            passed.clear()
            yield match, start
            end = find("\n", match.end())
        elif kind == "output":  # behind a prefix: its run may carry prefixes too
            cut = min(match.end("output"), start + MAX_LINE_BYTES)
            if (line := find_marker(text, start, cut)) is not None:
                yield line, start
            end = find("\n", _PREFIXED.match(text, at).end())  # type: ignore[union-attr]
        else:
            end = find("\n", start)
            passed.clear()
            line = find_marker(text, start, min(size if end < 0 else end, start + MAX_LINE_BYTES))
            if line is not None:
                yield line, start
        if end < 0:
            return
        pos = end + 1
