"""Reading a piece of plain-ASCII whole lines in place: one regex search per line that matters.

What ``scan.relevant_spans`` then ``kinds.find_marker`` give line by line, in one pass: the
search (``_NEXT``) stops at the next marker of any kind. A bare BuildKit line (``#<n> `` where
its line starts: nearly every line that matters) is read by that same match, its kind the
match's ``lastgroup``; a run of one vertex's output lines is part of it, so the engine skips
the run in C. Any other marker (one behind a CI prefix, a legacy ``Step``, an arrow) has its
line read by ``find_marker``, exactly as ``relevant_spans`` hands it on.

A vertex's name line reads on over the lines of the same vertex that follow it, as one match
(kind ``block``): its status lines that change nothing once the step is named (``transferring
context``, ``exporting layers``, layer progress), its output (the step ran) and its closing
``DONE``/``CACHED``. ``on_block`` applies them as the lines one by one would; where the name
made no step (``MAX_STEPS`` reached) it reads the block's other lines one by one.

A bare run is handed on once while no other line comes between (``relevant_spans``' rule);
a line longer than ``MAX_LINE_BYTES`` is cut there before it is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .kinds import LINE_KINDS, Handler, find_marker, kinds_led_by, on_vertex
from .scan import BARE_RUN, MAX_LINE_BYTES, OTHER_MARKERS, PREFIXED_RUN
from .state import MAX_STEPS, BuildState

# What may raise on a mangled line: the line is skipped, the build's others count.
MANGLED = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError,
           RecursionError)
# After the name line: the vertex's next lines while they change nothing once the step exists
# (not a label ``[``, not output, no kind of its own), then its output, then DONE or CACHED.
_SAME = r"\n#(?P=vertex) "
_QUIET = r"(?:sha256:|(?!CACHED|DONE|ERROR|CANCELED|extracting|naming)[^\[\d\n])[^\n]*+"
_BLOCK = (rf"(?P<block>(?:{_SAME}{_QUIET})*+"
          rf"(?P<ran>{_SAME}\d[^\n]*+(?:{_SAME}(?:\d[^\n]*+|{_QUIET}))*+)?"
          rf"(?:{_SAME}(?:(?P<block_cached>CACHED\b)"
          rf"|(?P<block_done>DONE(?: (?P<block_seconds>\d+(?:\.\d+)?)s)?\b))[^\n]*+)?)")


def _vertex_kinds() -> str:
    """The BuildKit kinds in table order: output runs on over the vertex's next output lines,
    a name over its block. Layer progress (``#6 sha256:...``) is no marker: the search goes
    past it."""
    tails = {"output": BARE_RUN.format(vertex="(?P=vertex)"), "named": _BLOCK}
    body = "|".join(f"(?P<{k.name}>{k.pattern})" + tails.get(k.name, "")
                    for k in kinds_led_by("#"))
    return rf"#(?P<vertex>\d+) (?!sha256:)(?:{body})"


# A line of a block that names its vertex again (or closes it): not output, progress, ``...``.
_NAMING = re.compile(r"\n#\d+ (?!\d|sha256:|\.\.\.)")
_NEXT = re.compile(f"{_vertex_kinds()}|{OTHER_MARKERS}")
_PREFIXED = re.compile(r"#(\d+) \d" + PREFIXED_RUN.format(vertex=r"\1"))


def on_block(build: BuildState, m: re.Match[str]) -> None:
    """A vertex's name line and the block of its lines after it (see above)."""
    try:
        on_vertex(build, m)
        step = build.steps.get("#" + m["vertex"])
    except MANGLED:
        step = None
    if step is None:  # no step was made: the block's lines do what each does alone
        if len(build.steps) >= MAX_STEPS:
            _dropped(build, m)
        else:
            _replay(build, m.string, m.end("named") + 1, m.end())
        return
    if m["ran"] is not None:
        step.ran = True
    if m["block_done"] is not None:
        seconds = m["block_seconds"]
        step.status, step.error = "done", None
        step.duration = float(seconds) if seconds else step.duration
    elif m["block_cached"] is not None:
        step.status, step.duration, step.error = "cached", 0.0, None


def _dropped(build: BuildState, m: re.Match[str]) -> None:
    """A block whose step is past ``MAX_STEPS``: each line naming it again is dropped too, its
    output is remembered (as ``mark_ran`` does), its DONE or CACHED finds no step."""
    closed = m["block_done"] is not None or m["block_cached"] is not None
    build.dropped_steps += len(_NAMING.findall(m.string, m.end("named"), m.end())) - closed
    if m["ran"] is not None:
        build.mark_ran("#" + m["vertex"])


def _replay(build: BuildState, text: str, start: int, end: int) -> None:
    """Apply the bare lines of ``text[start:end]`` one by one."""
    while start < end:
        stop = text.find("\n", start, end)
        stop = end if stop < 0 else stop
        line, start = find_marker(text, start, stop), stop + 1
        if line is None:
            continue
        try:
            ACTIONS[line.lastgroup or ""][0](build, line)
        except MANGLED:
            continue


# kind -> (handler, timed): every kind of the table, and a name line's block
ACTIONS: dict[str, tuple[Handler, bool]] = {
    **{kind.name: (kind.handler, kind.timed) for kind in LINE_KINDS}, "block": (on_block, True)}


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
        elif bare and match.end("named" if kind == "block" else 0) - at < MAX_LINE_BYTES:
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
