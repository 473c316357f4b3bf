"""What the parser knows of one build so far: its steps and the few facts around them.

The line handlers (``kinds``, ``rawjson``) change it; ``summary`` reads it once at the end.
Memory stays bounded whatever the log: at most ``MAX_STEPS`` steps, names cut to
``MAX_NAME_CHARS``, and two remembered timestamps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .model import MAX_NAME_CHARS, Format, Label, Step, classify

MAX_STEPS = 10_000  # records kept per build; a real Dockerfile has tens
MAX_NAMES = 64  # image names and services kept per build
MAX_STAMP_CHARS = 64  # a line's timestamp is at the start of its prefix
_STAMP_LEADS = frozenset("0123456789[")


@dataclass
class LegacyCursor:
    """The legacy builder prints one step at a time: the open one, and the stage it is in."""

    current: Step | None = None
    stages: int = 0  # FROMs seen: an unnamed stage is ``stage-<n>``, as BuildKit names it
    stage: str = ""  # ARGs before the first FROM belong to no stage
    success: bool = False  # "Successfully built" seen
    podman: bool = False  # Podman's "STEP k/N:" lines seen
    last_closed: Step | None = None  # the last step that reached its resulting layer


@dataclass
class BuildState:
    """Steps keyed by vertex number, rawjson digest or legacy step number, and what else counts.

    A key seen again (a retry, a log printed twice, a compose build naming the same vertex
    under two services) is the same step: it is counted once.
    """

    clock: Callable[[], float] | None = None
    format: Format = "unknown"
    steps: dict[str, Step] = field(default_factory=dict)
    ran_keys: set[str] = field(default_factory=set)  # output seen, maybe before the step's name
    legacy: LegacyCursor = field(default_factory=LegacyCursor)
    failure: str | None = None  # the build's own closing error line
    failure_cancelled: bool = False  # ... and it says the build was cancelled, not failed
    first_stamp: str = ""  # prefixes of the first and last timed line (read at the end)
    last_stamp: str = ""
    stamped_lines: int = 0
    json_started: float | None = None  # rawjson: earliest start and latest end of any vertex
    json_completed: float | None = None
    dropped_steps: int = 0
    banner: bool = False  # ``#0 building with ...`` seen
    names: list[str] = field(default_factory=list)  # image references it names (``naming to``)
    services: list[str] = field(default_factory=list)  # compose/bake services its labels name
    shared: dict[str, set[str]] = field(default_factory=dict)  # step key -> other services
    cli_error: str | None = None  # the docker command's own error before any step

    def claim(self, fmt: Format) -> None:
        """The log's format is the one of its first real build step."""
        if self.format == "unknown":
            self.format = fmt

    def add(self, key: str, name: str, label: Label) -> Step | None:
        """A new step named ``name``; ``None`` once ``MAX_STEPS`` are kept."""
        if len(self.steps) >= MAX_STEPS:
            self.dropped_steps += 1
            return None
        step = Step(key, name[:MAX_NAME_CHARS], label.kind, label.instruction[:MAX_NAME_CHARS],
                    label.stage, label.platform, label.index, label.total,
                    seen=len(self.steps), ran=key in self.ran_keys, service=label.service)
        self.steps[key] = step
        return step

    def rename(self, step: Step, name: str) -> None:
        """A vertex first seen through a stray line (``Merge pull request #3 from ...``)
        gets its real ``[k/N]`` name when BuildKit prints it."""
        label = classify(name)
        step.name, step.kind, step.instruction = name[:MAX_NAME_CHARS], label.kind, \
            label.instruction[:MAX_NAME_CHARS]
        step.stage, step.platform, step.index, step.total = label.stage, label.platform, \
            label.index, label.total
        step.service = label.service

    def mark_ran(self, key: str) -> None:
        """The step ``key`` printed output of its own: a command ran."""
        step = self.steps.get(key)
        if step is not None:
            step.ran = True
        elif len(self.ran_keys) < MAX_STEPS:
            self.ran_keys.add(key)

    def name(self, reference: str) -> None:
        """The build names its image (``naming to``, ``Successfully tagged``); a few kept."""
        if reference and reference not in self.names and len(self.names) < MAX_NAMES:
            self.names.append(reference[:MAX_NAME_CHARS])

    def serve(self, service: str) -> None:
        """A compose/bake service named by an internal vertex's label."""
        if service and service not in self.services and len(self.services) < MAX_NAMES:
            self.services.append(service[:MAX_NAME_CHARS])

    def share(self, step: Step, service: str) -> None:
        """BuildKit prints one vertex that several services share under each of their names:
        the step belongs to each of them."""
        if service and service != step.service and len(self.shared) < MAX_STEPS:
            self.shared.setdefault(step.key, set()).add(service[:MAX_NAME_CHARS])

    def fail(self, text: str, cancelled: bool = False) -> None:
        """The build's closing error; the first one is the cause, later ones its echoes."""
        if self.failure is None:
            self.failure, self.failure_cancelled = text[:MAX_NAME_CHARS], cancelled

    def stamp(self, prefix: str) -> None:
        """Keep a timed line's prefix if it may start with a timestamp (CI runners, Go's
        ``log``, ``[2024-...]``); only the first and the last are read, at the end."""
        if prefix[0] in _STAMP_LEADS:
            head = prefix[:MAX_STAMP_CHARS]
            if not self.first_stamp:
                self.first_stamp = head
            self.last_stamp = head
            self.stamped_lines += 1

    def json_times(self, started: float | None, completed: float | None) -> None:
        """Widen the rawjson build's span to cover one vertex's start and end."""
        if started is not None and (self.json_started is None or started < self.json_started):
            self.json_started = started
        if completed is not None and (self.json_completed is None
                                      or completed > self.json_completed):
            self.json_completed = completed

    def elapsed(self, step: Step) -> float | None:
        """Seconds since ``step`` started by the live clock (legacy prints no durations)."""
        if self.clock is None or step.started_at is None:
            return None
        return max(0.0, self.clock() - step.started_at)
