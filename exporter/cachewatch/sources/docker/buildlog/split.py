"""Every build in a log: a CI job's, a compose/bake build's, a file of builds one after another.

One ``BuildLogParser`` reads one build; ``BuildSplitter`` hands each line to the build it
belongs to, then gives one summary per build:

* **Streams.** A CI running steps side by side prefixes each line with its branch (Jenkins
  ``parallel``: ``[backend] #5 [2/3] RUN make``), and ``gh run view --log`` with its job and
  step (``build<TAB>Build image<TAB>2024-05-01T10:00:00Z #5 ...``). Each stream has its own
  current build, so two builds that both number their vertices from ``#0`` never mix.
* **Resets.** Within a stream a new build starts at buildx's ``#0 building with ...`` once the
  current build had one or has steps; at a build's opening vertex (``[internal] load build
  definition``, ``load .dockerignore``, ``load local bake definitions``) once the current build
  has a real step; at the legacy builder's ``Step 1/N`` once the current legacy build ended;
  at a line of the other format once the current build has steps; and at the docker command's
  own error once the current build has steps (a second command that failed before building).
* **Services.** A compose/bake build is one build per service (labels ``[web builder 2/5]``,
  ``[web internal] load build definition``). A step counts for each service its label names:
  BuildKit prints a vertex that services share under their names, sometimes under one only;
  a step naming no service belongs to every service. The service's name is its image.
* **Echoes.** A failed build printed again right after itself, the same steps with the same
  outcomes (Kamal prints a failed command's output once more), is one build.
* **No build.** Lines that show no build step are no build: a log of ``unknown flag:
  --progress`` is one failed build when the whole input is one docker command
  (``one_command``, as ``ingest-build`` reads it), and nothing in a whole CI job's log, where
  any docker command may print it. A build-specific error (``unable to prepare context``, a
  ``failed to solve`` before any step) is a failed build either way.

Names: a build's image is its service, else the repository of the image it names (``naming
to``, ``Successfully tagged``), ``docker.io/library/`` left out as the Docker CLI shows it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .inplace import ACTIONS, MANGLED
from .model import BuildSummary
from .parser import BuildLogParser, read, read_data
from .state import BuildState
from .summary import summarise

MAX_BUILDS = 200  # builds kept per log; later lines go to the last one
UNNAMED = "unnamed"  # the image of a build that names none, when no fallback is given
_TIME = (r"\[?\d{4}[-/]\d\d[-/]\d\d[T ][\d:.,]+(?:Z|[+-]\d\d:?\d\d)?\]?"
         r"|\[?\d\d:\d\d:\d\d(?:[.,]\d+)?\]?|\d\d[OE]\+?(?=\s)")
_LEAD = re.compile(rf"(?:\s+|{_TIME})*")
_BRANCH = re.compile(r"\[([^\]\s][^\]]{0,99})\]\s")
_NOT_BRANCHES = frozenset({"INFO", "WARN", "WARNING", "ERROR", "DEBUG", "TRACE", "FATAL",
                           "NOTICE", "PIPELINE", "STDOUT", "STDERR", "OUTPUT", "COMMAND"})
_HEX_ID = re.compile(r"[0-9a-f]{6,}|\d+(?:/\d+)?")
_OPENING = re.compile(r"\[(?:\S+ )?internal\] load (?:build definition|\.dockerignore|local "
                      r"bake definitions)")
_GENERIC_ERRORS = ("unknown ", "Cannot connect", "Error response")
# the kinds ``starts_new`` reads; a name line's ``block`` (see ``inplace``) is a name line
_OPENERS = frozenset({"banner", "named", "block", "step", "cli_error"})


def stream_of(prefix: str) -> str:
    """The stream a line belongs to, from what precedes its marker: ``gh run view --log``'s
    job and step columns, or a CI branch label (``[backend] ``) after any timestamps. Log
    levels (``[INFO]``), command ids (``[b771957d]``) and timestamps name no stream."""
    if not prefix:
        return ""
    columns = prefix.split("\t")
    if len(columns) >= 3 and columns[2][:1].isdigit():
        return "\t".join(columns[:2])
    lead = _LEAD.match(prefix)
    branch = _BRANCH.match(prefix, lead.end() if lead else 0)
    if branch is None:
        return ""
    name = branch.group(1).strip()
    if name.upper() in _NOT_BRANCHES or _HEX_ID.fullmatch(name):
        return ""
    return name


def starts_new(build: BuildState, match: re.Match[str]) -> bool:
    """Whether the line ``match`` opens a new build after ``build`` in the same stream."""
    kind = match.lastgroup or ""
    steps = build.steps
    if kind == "block":
        kind = "named"
    if kind == "banner":
        return build.banner or _labelled(build)
    if kind == "named":
        text = match["named_text"]
        if build.format == "legacy" and text.startswith("["):
            return bool(steps)
        return _OPENING.match(text) is not None and _labelled(build)
    if kind == "step":
        first = match["step_number"] == "1" and match["step_stage"] in (None, "1")
        ended = build.legacy.success or build.failure is not None
        return bool(steps) and (build.format != "legacy" or (first and ended))
    if kind == "cli_error":
        return _labelled(build) and not (build.legacy.current is not None
                                         and match.group(0).startswith("Error response"))
    return False


def _labelled(build: BuildState) -> bool:
    """The build has a real step: a ``[k/N]`` vertex or a legacy step. (A stray ``#3 from
    x`` in a job's output, ``Merge pull request #3 from ...``, is no step of a build.)"""
    return any(step.index is not None for step in build.steps.values())


@dataclass
class _Build:
    """One build being read: its parser and when (by the live clock) its lines came."""

    parser: BuildLogParser
    first: float | None = None
    last: float | None = None
    state: BuildState = field(init=False)  # the parser's, read once per line

    def __post_init__(self) -> None:
        self.state = self.parser.state


@dataclass
class BuildSplitter:
    """Feed every line of a log; ``finish()`` gives one summary per build in it."""

    clock: Callable[[], float] | None = None
    one_command: bool = True  # the input is one docker command's output (ingest-build)
    _builds: list[_Build] = field(default_factory=list)
    _current: dict[str, _Build] = field(default_factory=dict)

    def feed(self, line: bytes | str) -> None:
        """Parse one line; never raises on bad input."""
        match = read(line)
        if match is not None:
            self._route(match, 0)

    def feed_data(self, data: bytes) -> None:
        """Parse the relevant lines of whole-line ``data`` (see ``read_data``).

        A bare line (no prefix: stream ``""``, no timestamp) that opens no build goes straight
        to its handler, as ``_route`` would send it; every other line goes through ``_route``.
        """
        route, current = self._route, self._current
        if self.clock is not None:  # a live build: every line is timed by the clock
            for match, start in read_data(data):
                route(match, start)
            return
        for match, start in read_data(data):
            kind = match.lastgroup or ""
            build = current.get("") if match.start() == start else None
            if build is None or (kind in _OPENERS and starts_new(build.state, match)):
                route(match, start)
                continue
            try:
                ACTIONS[kind][0](build.state, match)
            except MANGLED:
                continue

    def _route(self, match: re.Match[str], start: int) -> None:
        """Apply a line read (its line starts at ``start`` of ``match.string``) to the
        current build of its stream, or to a new build it opens."""
        at = match.start()
        key = stream_of(match.string[start:at]) if at > start else ""
        build = self._current.get(key)
        if build is None or (match.lastgroup in _OPENERS and starts_new(build.parser.state, match)
                             and len(self._builds) < MAX_BUILDS):
            build = _Build(BuildLogParser(clock=self.clock))
            self._builds.append(build)
            self._current[key] = build
        if self.clock is not None:
            build.last = self.clock()
            build.first = build.last if build.first is None else build.first
        build.parser.apply(match, start)

    def finish(self, image: str = "", target: str = "", exit_code: int | None = None,
               duration: float | None = None) -> list[BuildSummary]:
        """One summary per build, in the order they started.

        ``image`` names a lone build (as ``--image`` always has) and is the fallback of the
        builds of a log of several that name none. A non-zero ``exit_code`` belongs to the
        last build (the command stopped there); the others' logs say how they ended. The
        wall-clock ``duration`` is a lone build's; in a log of several, each build's lines
        span its own.
        """
        builds = _without_echoes([b for b in self._builds if self._is_build(b)])
        failed_only = not builds and exit_code not in (None, 0) and self.one_command
        if failed_only:  # the command failed and its output shows no build: one failed build
            builds = self._builds[-1:] or [_Build(BuildLogParser())]
        parts = [(build, name, state) for build in builds for name, state in services(build)]
        lone = len(parts) == 1
        summaries = []
        for number, (build, name, state) in enumerate(parts, 1):
            last = number == len(parts)
            code = exit_code if last or exit_code in (None, 0) else None
            span = duration if lone else _span(build)
            summary = summarise(state, "", target, code, span)
            summary.image = (image or name) if lone else (name or image)
            summary.image = summary.image or UNNAMED
            if failed_only and summary.error is None:
                summary.error = f"the build command exited with code {exit_code}"
            summaries.append(summary)
        return summaries

    def _is_build(self, build: _Build) -> bool:
        """A build shows a real step or buildx's banner, or fails in a way only a build
        does."""
        state = build.state
        if state.banner or _labelled(state):
            return True
        if state.failure is None:
            return False
        generic = state.cli_error is not None and state.cli_error.startswith(_GENERIC_ERRORS)
        return self.one_command or not generic


def services(build: _Build) -> list[tuple[str, BuildState]]:
    """The build's name and state, or one (service, state) per compose/bake service."""
    state = build.state
    named = list(state.services)
    for step in state.steps.values():
        if not step.service and step.stage in named:
            step.service, step.stage = step.stage, ""
        if step.service and step.service not in named:
            named.append(step.service)
    if not named:
        return [(repository(state.names[0]) if state.names else "", state)]
    failed = {s.service for s in state.steps.values() if s.status == "error"}
    parts = []
    for service in named:
        steps = {key: step for key, step in state.steps.items()
                 if step.service in ("", service) or service in state.shared.get(key, ())}
        failure = state.failure if service in failed or not failed else None
        parts.append((service, replace(state, steps=steps, failure=failure)))
    return parts


def _without_echoes(builds: list[_Build]) -> list[_Build]:
    """Drop a failed build's echo: the next build, with the same steps and outcomes."""
    kept: list[_Build] = []
    for build in builds:
        before = kept[-1].state if kept else None
        if before is not None and before.failure is not None and \
                _outcomes(before) == _outcomes(build.state):
            continue
        kept.append(build)
    return kept


def _outcomes(state: BuildState) -> list[tuple[str, str, str, str | None]]:
    return [(s.key, s.name, s.status, s.error) for s in state.steps.values()]


def _span(build: _Build) -> float | None:
    if build.first is None or build.last is None:
        return None
    return max(0.0, build.last - build.first)


def repository(reference: str) -> str:
    """``docker.io/library/app:1.0`` -> ``app``; ``registry:5000/team/app:v1`` ->
    ``registry:5000/team/app`` (the engine's ``image`` label for the same image)."""
    name = reference.partition("@")[0]
    colon = name.rfind(":")
    name = name[:colon] if colon > name.rfind("/") else name
    for hub in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if name.startswith(hub):
            return name[len(hub):]
    return name
