"""What a build log is turned into: one ``Step`` per build step, one ``BuildSummary`` per build.

Also the two pieces of naming every format shares: which step names are cache lookups
(``classify``) and the stable label of an instruction (``normalise_instruction``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, fields
from typing import Any, Literal

Format = Literal["buildkit-plain", "buildkit-rawjson", "legacy", "unknown"]
Kind = Literal["step", "from", "internal"]
StepStatus = Literal["running", "cached", "done", "error", "canceled"]
BuildStatus = Literal["success", "failed", "cancelled"]

MAX_NAME_CHARS = 2048  # a step name kept longer than this is cut: 10,000 of them stay small
MAX_CACHED_NAME = 256  # vertex names read once per name up to this length (1024 kept)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_K_OF_N = re.compile(r"^(\d+)/(\d+)$")
_LABEL = re.compile(r"^\[([^\]]*)\]\s*(.*)$")
# Vertices BuildKit prints with a ``[k/N]`` label or not that never look up the layer cache.
_NOT_CACHEABLE_LABELS = frozenset({"internal", "auth"})
_NOT_CACHEABLE_NAMES = ("load metadata", "load build definition", "load .dockerignore",
                        "load build context", "importing cache manifest", "exporting",
                        "writing image", "naming to", "resolve image config")


@dataclass
class Step:
    """One build step (a BuildKit vertex or a legacy ``Step k/N``), as far as the log told.

    ``status`` is the last state the log printed; ``ran`` and ``pulled`` are the evidence the
    counting rules need on top of it (see ``outcome``).
    """

    key: str
    name: str
    kind: Kind
    instruction: str
    stage: str = ""
    platform: str = ""
    index: int | None = None
    total: int | None = None
    status: StepStatus = "running"
    duration: float | None = None
    error: str | None = None
    seen: int = 0  # order of first appearance: Dockerfile order's tie-break
    service: str = ""  # the compose/bake service its label names, if any
    ran: bool = False  # printed output of its own (BuildKit) or "Running in" (legacy)
    pulled: bool = False  # printed "extracting sha256:...": layers came from a registry
    started_at: float | None = field(default=None, repr=False)

    @property
    def remote_hit(self) -> bool:
        """Taken from an imported cache (``--cache-from``): only layer pulls, then DONE."""
        return self.status == "done" and self.pulled and not self.ran

    @property
    def outcome(self) -> Literal["hit", "miss"] | None:
        """``hit``, ``miss`` or ``None`` (not a lookup, or the log cannot tell).

        A cached step is a hit; a step that finished, failed, or was cancelled or cut off
        after it printed output ran, so it is a miss. A step cancelled before it printed
        anything never started and is not counted.
        """
        if self.kind != "step":
            return None
        if self.status == "cached" or self.remote_hit:
            return "hit"
        if self.status in ("done", "error") or self.ran:
            return "miss"
        return None

    @property
    def lookup(self) -> bool:
        """Whether this step counts as a cache lookup."""
        return self.outcome is not None

    @property
    def hit(self) -> bool:
        return self.outcome == "hit"


@dataclass
class BuildSummary:
    """What one build did with the cache: the record sent to the exporter and printed by the CLI.

    ``truncated`` says the log stops before the build's end: the counts are what it shows.
    """

    image: str
    target: str
    format: Format
    status: BuildStatus
    duration_seconds: float
    steps: int
    lookups: int
    hits: int
    misses: int
    executed_seconds: float
    cached_seconds: float
    rebuild_seconds: float
    cache_buster: str | None
    cache_buster_step: str | None
    error: str | None
    truncated: bool
    records: list[dict[str, Any]]

    @property
    def hit_ratio(self) -> float | None:
        return self.hits / self.lookups if self.lookups else None

    def to_dict(self) -> dict[str, Any]:
        """What ``dataclasses.asdict`` gives, for a fifth of its cost (it deep-copies every
        value of every record): the fields, and the records copied one level down, which
        holds all there is (``summary.record`` writes only numbers, strings and flags)."""
        out = {name: getattr(self, name) for name in _SUMMARY_FIELDS}
        out["records"] = [dict(record) for record in self.records]
        return out


_SUMMARY_FIELDS = tuple(f.name for f in fields(BuildSummary))


@dataclass(frozen=True)
class Label:
    """What a BuildKit vertex name says: ``[linux/amd64 builder 2/5] RUN make``."""

    kind: Kind
    instruction: str
    stage: str = ""
    platform: str = ""
    index: int | None = None
    total: int | None = None
    service: str = ""  # compose/bake: ``[web builder 2/5]``, ``[web internal]``


def classify(name: str) -> Label:
    """Read a vertex name (a short one from a cache: a log names the same vertices over and
    over, ``[internal] load build definition``, ``exporting to image``, in every build)."""
    return _classify_short(name) if len(name) <= MAX_CACHED_NAME else _classify(name)


def _classify(name: str) -> Label:
    """Read a vertex name: platform, stage, ``k/N`` and instruction, and whether it is a lookup.

    The label's words are, in order, optional platform (``linux/amd64``, ``linux/amd64->arm64``),
    optional compose/bake service, optional stage name, then ``k/N`` (padded: ``[ 3/11]``). A
    vertex with no ``k/N`` (``[internal] load ...``, ``exporting to image``) is internal; its
    label still names the service when it has one (``[web internal]``, ``[web] exporting``).
    A single word before ``k/N`` is read as the stage: only the build's internal vertices
    tell whether it is a service (see ``services``).
    """
    match = _LABEL.match(name)
    if match is None:
        first = name.split(" ", 1)[0].upper()
        return Label("from" if first == "FROM" else "internal", name)
    words, instruction = match.group(1).split(), match.group(2)
    position = _K_OF_N.match(words[-1]) if words else None
    if position is None or _NOT_CACHEABLE_LABELS.intersection(words):
        return Label("internal", instruction, service=_service_of_internal(words))
    others = words[:-1]
    platform = next((w for w in others if "/" in w), "")
    stages = [w for w in others if w != platform]
    service = stages[0] if len(stages) > 1 else ""
    kind: Kind = "step"
    if instruction.split(" ", 1)[0].upper() == "FROM":
        kind = "from"
    elif instruction.startswith(_NOT_CACHEABLE_NAMES):
        kind = "internal"
    return Label(kind, instruction, stages[-1] if stages else "", platform,
                 int(position.group(1)), int(position.group(2)), service)


_classify_short = functools.lru_cache(maxsize=1024)(_classify)  # Label is immutable


def _service_of_internal(words: list[str]) -> str:
    """The service an internal vertex's label names: ``[web internal]`` -> ``web``,
    ``[web] exporting to image`` -> ``web``; ``[internal]``, ``[auth]`` name none."""
    named = [w for w in words if w not in _NOT_CACHEABLE_LABELS and "/" not in w]
    return named[0] if len(named) == 1 and not _K_OF_N.match(named[0]) else ""


def normalise_instruction(instruction: str, limit: int = 100) -> str:
    """A stable label for an instruction: no comments, hashes or runs of whitespace.

    ``COPY . /app # 3f2a9c...`` and ``COPY . /app`` are the same cache buster.
    """
    text = _ANSI.sub("", instruction)
    text = re.sub(r"\s+#.*$", "", text)
    text = re.sub(r"sha256:[0-9a-f]{8,}", "sha256:<hash>", text)
    text = re.sub(r"\b[0-9a-f]{12,}\b", "<hash>", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def strip_ansi(text: str) -> str:
    """Text without terminal colour and cursor codes (``--progress=tty`` leftovers)."""
    return _ANSI.sub("", text) if "\x1b" in text else text
