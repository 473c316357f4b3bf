"""``BuildLogParser``: feed it lines, one at a time, as the build prints them; ``finish()``.

It finds each line's kind in ``kinds.LINE_KINDS`` (one regex search: the leftmost marker
wins, whatever prefix precedes it) and runs that kind's handler on the build's state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from .inplace import ACTIONS, MANGLED, read_ascii
from .kinds import find_marker
from .model import BuildSummary, Format, Step, strip_ansi
from .scan import MAX_LINE_BYTES, relevant_spans
from .state import BuildState
from .summary import summarise


def read(line: bytes | str) -> re.Match[str] | None:
    """A line's marker (its kind is ``lastgroup``; ``string`` is the line without colour
    codes or line end), or ``None`` for a line that says nothing about a build."""
    if isinstance(line, bytes):
        line = line[:MAX_LINE_BYTES].decode("utf-8", "replace")
    return find_marker(strip_ansi(line[:MAX_LINE_BYTES]).rstrip("\r\n"))


def read_data(data: bytes) -> Iterator[tuple[re.Match[str], int]]:
    """The markers of the relevant lines of whole-line ``data`` (a ``complete_lines`` piece),
    each with where its line starts in the match's string: what ``read`` gives line by line.

    Plain ASCII without colour codes (nearly every log) is decoded once and each line read in
    place: no copy, decode or clean-up per line, since each would change nothing.
    """
    if b"\r" in data:
        data = data.replace(b"\r", b"\n")
    if data.isascii() and b"\x1b" not in data:
        yield from read_ascii(data.decode("ascii"))
        return
    for start, end in relevant_spans(data):
        if (match := read(data[start:end])) is not None:
            yield match, 0


class BuildLogParser:
    """Feed lines; read ``steps`` at any time; ``finish()`` for the summary.

    ``clock`` (the CLI's ``now``) times legacy steps of a live build, which prints no
    durations of its own.
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._build = BuildState(clock=clock)

    @property
    def format(self) -> Format:
        return self._build.format

    @property
    def steps(self) -> list[Step]:
        return sorted(self._build.steps.values(), key=lambda s: s.seen)

    @property
    def dropped_steps(self) -> int:
        """Steps past ``MAX_STEPS``, not kept."""
        return self._build.dropped_steps

    @property
    def state(self) -> BuildState:
        """What the build's lines said so far (read by the splitter of a multi-build log)."""
        return self._build

    def feed(self, line: bytes | str) -> None:
        """Parse one line (with or without its newline). Never raises on bad input."""
        match = read(line)
        if match is not None:
            self.apply(match)

    def feed_data(self, data: bytes) -> None:
        """Parse the relevant lines of whole-line ``data`` (see ``read_data``)."""
        for match, start in read_data(data):
            self.apply(match, start)

    def apply(self, match: re.Match[str], line_start: int = 0) -> None:
        """Run the handler of a line already read (``read``) on this build; the line starts at
        ``line_start`` of ``match.string`` (a whole chunk, read in place)."""
        handler, timed = ACTIONS[match.lastgroup or ""]
        try:
            if timed and match.start() > line_start:
                self._build.stamp(match.string[line_start:match.start()])
            handler(self._build, match)
        except MANGLED:
            return

    def finish(self, image: str = "", target: str = "", exit_code: int | None = None,
               duration: float | None = None) -> BuildSummary:
        """Close the build: status, counts, cache buster. ``duration`` is the stream's
        wall-clock time, used when the log carries no timestamps of its own."""
        current = self._build.legacy.current
        if current is not None and exit_code not in (None, 0):
            current.status, current.error = "error", f"the build exited with code {exit_code}"
        return summarise(self._build, image, target, exit_code, duration)
