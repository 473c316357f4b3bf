"""Docker build logs -> one record per build step, and the build's cache summary.

Streaming and incremental: feed it lines (bytes or text) as the build prints them; memory stays
bounded whatever the log's size, because only one record per step is kept (capped) and no line
is kept past its parsing. Three formats, told apart line by line:

* BuildKit ``--progress=plain``: ``#6 [base 2/4] COPY app.txt /app.txt`` ... ``#6 CACHED`` /
  ``#6 DONE 0.4s`` / ``#6 ERROR: ...`` / ``#6 CANCELED``; vertices interleave and may be
  announced again (retries), so records are keyed by vertex number and the last state wins.
* BuildKit ``--progress=rawjson``: one SolveStatus JSON object per line; a vertex is repeated
  many times as it progresses, so records are keyed by its ``digest``.
* The legacy builder: ``Step 3/8 : RUN ...``, `` ---> Using cache``, `` ---> Running in ...``.
  It prints no durations; when fed live, step durations come from the clock.

Like ``buildctl --debug-json-cache-metrics``, ``[internal]``/``[auth]`` steps, cache import and
export, and ``FROM`` are kept as records but are not cache lookups.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import IO, Any, Literal

Format = Literal["buildkit-plain", "buildkit-rawjson", "legacy", "unknown"]
Kind = Literal["step", "from", "internal"]
StepStatus = Literal["running", "cached", "done", "error", "canceled"]
BuildStatus = Literal["success", "failed", "cancelled"]

MAX_LINE_BYTES = 256 * 1024  # longer lines are cut; a build step name is never this long
MAX_STEPS = 10_000  # records kept per build; a real Dockerfile has tens

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PLAIN = re.compile(r"^#(\d+) (.*)$")
_PLAIN_DONE = re.compile(r"^DONE (\d+(?:\.\d+)?)s$")
_PLAIN_LOG = re.compile(r"^\d+(?:\.\d+)? ")  # "0.083 building": output of the step
_DIGEST_LINE = re.compile(r"^sha256:[0-9a-f]{64}$")
_STEP_NAME = re.compile(  # [linux/amd64 builder 2/5] RUN make: platform and stage optional
    r"^\[(?:(?P<platform>[^\]\s/]+/[^\]\s]+) )?(?:(?P<stage>[^\]\s]+) )?"
    r"(?P<index>\d+)/(?P<total>\d+)\] (?P<instr>.*)$")
_LEGACY_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_LEGACY_FROM_ALIAS = re.compile(r"\bAS\s+(\S+)\s*$", re.IGNORECASE)
_LEGACY_ARROW = re.compile(r"^ ---> (.*)$")
_LEGACY_FAILED = re.compile(r"^The command '.*' returned a non-zero code: \d+")
_FRACTION = re.compile(r"(\.\d{6})\d+")
_INTERNAL_PREFIXES = ("[internal]", "[auth]")


@dataclass
class Step:
    """One build step (a BuildKit vertex or a legacy ``Step N/M``), as far as the log told."""

    key: str
    name: str
    kind: Kind
    instruction: str
    stage: str = ""
    index: int | None = None
    total: int | None = None
    status: StepStatus = "running"
    duration: float | None = None
    error: str | None = None
    seen: int = 0  # order of first appearance, for "first" in the cache-buster sense
    started_at: float | None = field(default=None, repr=False)

    @property
    def lookup(self) -> bool:
        """Whether this step counts as a cache lookup (a cacheable step that finished)."""
        return self.kind == "step" and self.status in ("cached", "done", "error")

    @property
    def hit(self) -> bool:
        return self.status == "cached"


@dataclass
class BuildSummary:
    """What one build did with the cache: the record sent to the exporter and printed by the CLI."""

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
    records: list[dict[str, Any]]

    @property
    def hit_ratio(self) -> float | None:
        return self.hits / self.lookups if self.lookups else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def classify(name: str) -> tuple[Kind, str, str, int | None, int | None]:
    """``(kind, instruction, stage, index, total)`` from a BuildKit vertex name."""
    match = _STEP_NAME.match(name)
    if match is None:
        return "internal", name, "", None, None
    instruction = match.group("instr")
    kind: Kind = "from" if instruction.split(" ", 1)[0].upper() == "FROM" else "step"
    return (kind, instruction, match.group("stage") or "", int(match.group("index")),
            int(match.group("total")))


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


class BuildLogParser:
    """Feed lines; read ``steps`` at any time; ``finish()`` for the summary."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.format: Format = "unknown"
        self._steps: dict[str, Step] = {}
        self._clock = clock
        self._legacy_current: Step | None = None
        self._legacy_stages = 0
        self._legacy_stage = ""
        self._legacy_success = False
        self._failure: str | None = None
        self._first_seen_at: float | None = None
        self.dropped_steps = 0

    @property
    def steps(self) -> list[Step]:
        return sorted(self._steps.values(), key=lambda s: s.seen)

    def feed(self, line: bytes | str) -> None:
        """Parse one line (with or without its newline). Never raises on bad input."""
        if isinstance(line, bytes):
            line = line[:MAX_LINE_BYTES].decode("utf-8", "replace")
        text = _ANSI.sub("", line[:MAX_LINE_BYTES]).rstrip("\r\n")
        if self._clock is not None and self._first_seen_at is None:
            self._first_seen_at = self._clock()
        if not text.strip():
            return
        try:
            if text.startswith("#"):
                self._plain(text)
            elif text.startswith("{"):
                self._rawjson(text)
            else:
                self._legacy(text)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError):
            return  # a mangled line is skipped; the build's other lines still count

    # --- BuildKit plain ---------------------------------------------------------------------
    def _plain(self, text: str) -> None:
        match = _PLAIN.match(text)
        if match is None:
            return
        self.format = "buildkit-plain"
        key, rest = "#" + match.group(1), match.group(2)
        step = self._steps.get(key)
        if step is None:
            if rest.startswith(("DONE ", "CACHED", "ERROR", "CANCELED")) or _PLAIN_LOG.match(rest) \
                    or _DIGEST_LINE.match(rest):
                return  # the name line was lost (truncated log): nothing to attribute it to
            kind, instruction, stage, index, total = classify(rest)
            self._add(Step(key, rest, kind, instruction, stage, index, total))
            return
        if rest == "CACHED":
            step.status, step.duration, step.error = "cached", 0.0, None
        elif (done := _PLAIN_DONE.match(rest)) is not None:
            step.status, step.duration, step.error = "done", float(done.group(1)), None
        elif rest.startswith("ERROR"):
            step.status = "error"
            step.error = rest.partition(":")[2].strip() or rest
        elif rest.startswith("CANCELED"):
            step.status = "canceled"
        elif rest == step.name and step.status != "running":
            step.status = "running"  # announced again: a retry; its new outcome follows

    # --- BuildKit rawjson -------------------------------------------------------------------
    def _rawjson(self, text: str) -> None:
        data = json.loads(text)
        if not isinstance(data, dict):
            return
        vertexes = data.get("vertexes") or data.get("Vertexes") or []
        if not isinstance(vertexes, list):
            return
        self.format = "buildkit-rawjson"
        for vertex in vertexes:
            if not isinstance(vertex, dict):
                continue
            digest = str(vertex.get("digest") or vertex.get("Digest") or "")
            name = str(vertex.get("name") or vertex.get("Name") or "")
            if not digest:
                continue
            step = self._steps.get(digest)
            if step is None:
                if not name:
                    continue
                kind, instruction, stage, index, total = classify(name)
                step = self._add(Step(digest, name, kind, instruction, stage, index, total))
                if step is None:
                    continue
            started = _timestamp(vertex.get("started") or vertex.get("Started"))
            completed = _timestamp(vertex.get("completed") or vertex.get("Completed"))
            error = vertex.get("error") or vertex.get("Error")
            if vertex.get("cached") or vertex.get("Cached"):
                step.status, step.error = "cached", None
                step.duration = max(0.0, completed - started) if started and completed else 0.0
            elif error:
                canceled = "context canceled" in str(error)
                step.status = "canceled" if canceled else "error"
                step.error = None if canceled else str(error)
            elif completed is not None:
                step.status, step.error = "done", None
                step.duration = max(0.0, completed - started) if started else None

    # --- legacy builder ---------------------------------------------------------------------
    def _legacy(self, text: str) -> None:
        if (match := _LEGACY_STEP.match(text)) is not None:
            self.format = "legacy"
            self._legacy_close("done")
            number, total, instruction = int(match.group(1)), int(match.group(2)), match.group(3)
            is_from = instruction.split(" ", 1)[0].upper() == "FROM"
            if is_from:
                alias = _LEGACY_FROM_ALIAS.search(instruction)
                self._legacy_stage = alias.group(1) if alias else f"stage-{self._legacy_stages}"
                self._legacy_stages += 1
            step = Step(f"step-{number}", f"Step {number}/{total} : {instruction}",
                        "from" if is_from else "step", instruction, self._legacy_stage, number,
                        total)
            step.started_at = self._clock() if self._clock else None
            self._legacy_current = self._add(step)
            return
        current = self._legacy_current
        if (arrow := _LEGACY_ARROW.match(text)) is not None and current is not None:
            what = arrow.group(1).strip()
            if what == "Using cache":
                current.status = "cached"
            elif what.startswith("Running in"):
                current.status = "running"
            elif current.status == "cached":
                pass  # " ---> <image id>" after "Using cache": the cached layer's id
            elif current.kind == "from":
                current.status = "cached" if what else "done"
            else:
                current.error = None
                current.duration = self._legacy_elapsed(current)
                current.status = "done"
                self._legacy_current = None  # later output belongs to no step
        elif text.startswith("Successfully built"):
            self._legacy_close("done")
            self._legacy_success = True
        elif text.startswith(("ERROR: failed to solve", "error: failed to solve")):
            self._failure = text.partition(": ")[2] or text  # BuildKit's closing line
        elif _LEGACY_FAILED.match(text) or text.startswith(("COPY failed", "ADD failed")):
            self._failure = text
            if current is not None:
                current.status, current.error = "error", text
                current.duration = self._legacy_elapsed(current)
                self._legacy_current = None

    def _legacy_elapsed(self, step: Step) -> float | None:
        if self._clock is None or step.started_at is None:
            return None
        return max(0.0, self._clock() - step.started_at)

    def _legacy_close(self, status: StepStatus) -> None:
        step = self._legacy_current
        if step is None:
            return
        if step.status == "running":
            step.status = status
        if step.duration is None:
            elapsed = self._legacy_elapsed(step)
            step.duration = 0.0 if elapsed is None and step.status == "cached" else elapsed
        self._legacy_current = None

    def _add(self, step: Step) -> Step | None:
        if len(self._steps) >= MAX_STEPS:
            self.dropped_steps += 1
            return None
        step.seen = len(self._steps)
        self._steps[step.key] = step
        return step

    # --- the summary ------------------------------------------------------------------------
    def finish(self, image: str = "", target: str = "", exit_code: int | None = None,
               duration: float | None = None) -> BuildSummary:
        """Close the build: decide its status and its cache buster, add up the seconds."""
        if self._legacy_current is not None:
            still_running = self._legacy_current.status == "running"
            failed = exit_code not in (None, 0) or (not self._legacy_success and still_running)
            self._legacy_close("error" if failed else "done")
        steps = self.steps
        errors = [s for s in steps if s.status == "error"]
        canceled = [s for s in steps if s.status == "canceled"]
        status: BuildStatus
        if exit_code in (130, 143, -2, -15):  # interrupted (SIGINT/SIGTERM), by hand or by CI
            status = "cancelled"
        elif errors or self._failure or exit_code not in (None, 0):
            status = "failed"
        elif canceled:
            status = "cancelled"
        else:
            status = "success"
        lookups = [s for s in steps if s.lookup]
        hits = [s for s in lookups if s.hit]
        warm = any(s.hit for s in steps if s.kind in ("step", "from"))
        stage_rank: dict[str, int] = {}
        for step in steps:
            stage_rank.setdefault(step.stage, len(stage_rank))
        misses = [s for s in lookups if not s.hit]
        # A `COPY --from=X` that missed because stage X missed is a consequence, not the cause:
        # with parallel stages BuildKit may print it first, so it is not a buster candidate.
        missed_stages = {s.stage for s in misses}
        causes = [s for s in misses if _from_stage(s.instruction) not in missed_stages] or misses
        causes.sort(key=lambda s: (stage_rank[s.stage], s.index or 0, s.seen))
        buster = causes[0] if warm and causes else None
        executed = sum(s.duration or 0.0 for s in lookups if not s.hit)
        cached = sum(s.duration or 0.0 for s in hits)
        if duration is None:
            duration = sum(s.duration or 0.0 for s in steps)
        error = errors[0].error if errors else self._failure
        return BuildSummary(
            image=image, target=target, format=self.format, status=status,
            duration_seconds=round(duration, 6), steps=len(steps), lookups=len(lookups),
            hits=len(hits), misses=len(lookups) - len(hits),
            executed_seconds=round(executed, 6), cached_seconds=round(cached, 6),
            rebuild_seconds=round(executed if warm else 0.0, 6),
            cache_buster=normalise_instruction(buster.instruction) if buster else None,
            cache_buster_step=buster.name if buster else None,
            error=error,
            records=[_record(s) for s in steps],
        )


_COPY_FROM = re.compile(r"--from=(\S+)")


def _from_stage(instruction: str) -> str | None:
    """The stage a ``COPY --from=`` reads (``--from=0`` is BuildKit's ``stage-0``)."""
    match = _COPY_FROM.search(instruction)
    if match is None:
        return None
    source = match.group(1)
    return f"stage-{source}" if source.isdigit() else source


def _record(step: Step) -> dict[str, Any]:
    return {
        "stage": step.stage, "index": step.index, "name": step.name, "kind": step.kind,
        "status": step.status, "cached": step.hit, "duration": step.duration,
        "error": step.error,
    }


def _timestamp(value: Any) -> float | None:
    """RFC 3339 with nanoseconds (Go's format) -> epoch seconds."""
    if not isinstance(value, str) or not value:
        return None
    text = _FRACTION.sub(r"\1", value.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


# Lines that can change a step's state. Everything else is a step's own output (the bulk of a
# large log): it is split off and skipped by C code (bytes.split, filter, re.match), never
# looked at line by line in Python.
_RELEVANT = re.compile(
    rb"#\d+ (?!\d|sha256:)"  # BuildKit plain: names and states, not "#6 0.083 output"
    rb"|\{(?=.*\"[Vv]ertexes\")"  # rawjson records that carry vertexes
    rb"|Step \d+/\d+ : | ---> |Successfully built |The command '|COPY failed|ADD failed"
    rb"|ERROR: failed to solve|error: failed to solve"
)


def relevant_lines(data: bytes) -> Iterator[bytes]:
    """The lines of complete-line ``data`` that the parser needs (``\\r`` counts as a break)."""
    for line in filter(_RELEVANT.match, data.replace(b"\r", b"\n").split(b"\n")):
        yield line[:MAX_LINE_BYTES]


def stream_lines(stream: IO[bytes], chunk_size: int = 1 << 20,
                 tee: Callable[[bytes], Any] | None = None) -> Iterator[bytes]:
    """Relevant lines of a binary stream in bounded memory; ``tee`` sees every byte first.

    A line longer than ``MAX_LINE_BYTES`` is cut there and its rest skipped, so a log without
    newlines cannot grow a buffer without bound.
    """
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
            newline = min(breaks)
            chunk, overflow = chunk[newline:], False
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


def parse_bytes(data: bytes, image: str = "", target: str = "",
                exit_code: int | None = None) -> BuildSummary:
    """Parse a whole log held in memory (a request body), a slice at a time."""
    parser = BuildLogParser()
    for line in stream_lines(io.BytesIO(data)):
        parser.feed(line)
    return parser.finish(image, target, exit_code)


def parse_lines(lines: Iterable[bytes | str], image: str = "", target: str = "",
                exit_code: int | None = None) -> BuildSummary:
    """Parse a log given line by line (every line is looked at)."""
    parser = BuildLogParser()
    for line in lines:
        parser.feed(line)
    return parser.finish(image, target, exit_code)


def now() -> float:
    """The clock the CLI gives the parser for live builds."""
    return time.monotonic()
