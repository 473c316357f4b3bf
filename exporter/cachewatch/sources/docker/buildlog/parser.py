"""``BuildLogParser``: feed it lines, one at a time, as the build prints them; ``finish()``.

It finds each line's kind in ``kinds.LINE_KINDS`` (one regex search: the leftmost marker
wins, whatever prefix precedes it) and runs that kind's handler on the build's state.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .kinds import KINDS, find_marker
from .model import BuildSummary, Format, Step, strip_ansi
from .scan import MAX_LINE_BYTES
from .state import BuildState
from .summary import summarise

# What a handler may raise on a mangled line: the line is skipped, the build's others count.
_MANGLED = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError,
            RecursionError)


def read(line: bytes | str) -> re.Match[str] | None:
    """A line's marker (its kind is ``lastgroup``; ``string`` is the line without colour
    codes or line end), or ``None`` for a line that says nothing about a build."""
    if isinstance(line, bytes):
        line = line[:MAX_LINE_BYTES].decode("utf-8", "replace")
    return find_marker(strip_ansi(line[:MAX_LINE_BYTES]).rstrip("\r\n"))


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

    def apply(self, match: re.Match[str]) -> None:
        """Run the handler of a line already read (``read``) on this build."""
        kind = KINDS[match.lastgroup or ""]
        try:
            if kind.timed and match.start():
                self._build.stamp(match.string[: match.start()])
            kind.handler(self._build, match)
        except _MANGLED:
            return

    def finish(self, image: str = "", target: str = "", exit_code: int | None = None,
               duration: float | None = None) -> BuildSummary:
        """Close the build: status, counts, cache buster. ``duration`` is the stream's
        wall-clock time, used when the log carries no timestamps of its own."""
        current = self._build.legacy.current
        if current is not None and exit_code not in (None, 0):
            current.status, current.error = "error", f"the build exited with code {exit_code}"
        return summarise(self._build, image, target, exit_code, duration)
