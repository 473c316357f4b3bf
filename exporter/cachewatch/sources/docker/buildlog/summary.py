"""The end of a build: its status, its lookups, hits and misses, and its cache buster.

The counting rules:

* A lookup is a cacheable step (``Step.kind == "step"``) that was a hit or ran (see
  ``Step.outcome``); FROM is never one, in either format. In a log cut off mid-build, a
  step still open at the cut was cut off while running: it ran.
* The cache buster is the first step that ran, in Dockerfile order, of a build where
  something came from the cache: a hit, or a FROM that BuildKit printed CACHED (the legacy
  builder's FROM never counts). A cold build and a fully cached build have no buster.
* Dockerfile order is stage order as printed, corrected so a stage a ``COPY --from`` reads
  comes before the stage that copies (BuildKit may print them the other way round when they
  run in parallel), then step number, then order of appearance (platforms of one step).
"""

from __future__ import annotations

import re
from typing import Any

from .model import BuildStatus, BuildSummary, Step, normalise_instruction
from .state import BuildState
from .times import prefix_seconds

INTERRUPTED = (130, 143, -2, -15)  # SIGINT/SIGTERM, by hand or by CI
MAX_SPAN = 7 * 86400  # the exporter's limit; a log spanning more mixes unrelated timestamps
# Unlabelled vertex names that are real vertices (they always end), unlike a stray "#3 from".
_VERTEX_NAMES = ("[", "FROM ", "exporting ", "importing cache", "resolve image config",
                 "preparing build cache")
_COPY_FROM = re.compile(r"--from=(\S+)")


def summarise(build: BuildState, image: str, target: str, exit_code: int | None,
              duration: float | None) -> BuildSummary:
    """The summary of everything ``build`` saw; ``duration`` is the stream's wall-clock time."""
    steps = sorted(build.steps.values(), key=lambda s: s.seen)
    truncated = is_truncated(build, steps)
    if truncated:
        for step in steps:
            step.ran = step.ran or step.status == "running"  # cut off while running: it ran
    status = build_status(build, steps, exit_code, truncated)
    hits = [s for s in steps if s.outcome == "hit"]
    misses = [s for s in steps if s.outcome == "miss"]
    warm = bool(hits) or any(s.kind == "from" and s.status == "cached" for s in steps)
    buster = first_in_dockerfile_order(steps, misses) if warm and misses else None
    executed = sum(s.duration or 0.0 for s in misses)
    return BuildSummary(
        image=image, target=target, format=build.format, status=status,
        duration_seconds=round(build_duration(build, steps, duration), 6), steps=len(steps),
        lookups=len(hits) + len(misses), hits=len(hits), misses=len(misses),
        executed_seconds=round(executed, 6),
        cached_seconds=round(sum(s.duration or 0.0 for s in hits), 6),
        rebuild_seconds=round(executed if warm else 0.0, 6),
        cache_buster=normalise_instruction(buster.instruction) if buster else None,
        cache_buster_step=buster.name if buster else None,
        error=build_error(build, steps), truncated=truncated,
        records=[record(s) for s in steps],
    )


def is_truncated(build: BuildState, steps: list[Step]) -> bool:
    """Whether the log stops before the build's end.

    A build that failed or was cancelled said so (a closing error, a failed step); otherwise
    BuildKit ends every vertex it named (DONE, CACHED, ...) and the legacy builder ends with
    ``Successfully built``, or stops after a step's layer before its last step when an error
    it prints in no fixed form stopped it.
    """
    if build.failure is not None or any(s.status == "error" for s in steps):
        return False
    if build.format == "legacy":
        cursor = build.legacy
        if cursor.success:
            return False
        last = cursor.last_closed
        return cursor.current is not None or (last is not None and last.index == last.total)
    return any(s.status == "running" and s.name.startswith(_VERTEX_NAMES) for s in steps)


def build_status(build: BuildState, steps: list[Step], exit_code: int | None,
                 truncated: bool) -> BuildStatus:
    """The exit code when known, else what the log says; a cut-off log is a failed build
    (a build killed mid-step, as CI does on timeout, is what usually cuts a piped log)."""
    if exit_code in INTERRUPTED:
        return "cancelled"
    if any(s.status == "error" for s in steps) or exit_code not in (None, 0) or (
            build.failure is not None and not build.failure_cancelled):
        return "failed"
    if build.failure_cancelled:
        return "cancelled"
    if exit_code == 0:
        return "success"
    if any(s.status == "canceled" and s.kind != "internal" for s in steps):
        return "cancelled"
    if truncated or legacy_stopped_early(build):
        return "failed"
    return "success"


def legacy_stopped_early(build: BuildState) -> bool:
    """A legacy build that ended after a step's layer, before its last step: an error
    stopped it (``builder stage name already used`` and the like have no fixed form)."""
    cursor = build.legacy
    last = cursor.last_closed
    return (build.format == "legacy" and not cursor.success and cursor.current is None
            and last is not None and last.index != last.total)


def build_error(build: BuildState, steps: list[Step]) -> str | None:
    """The first failed step's error, else the build's closing error, else why it stopped."""
    failed = [s for s in steps if s.status == "error"]
    if failed:
        return failed[0].error
    if build.failure is not None:
        return build.failure
    if legacy_stopped_early(build) and build.legacy.last_closed is not None:
        return (f"the build stopped after {build.legacy.last_closed.name!r} without "
                "'Successfully built'")
    return None


def build_duration(build: BuildState, steps: list[Step], wall_clock: float | None) -> float:
    """The log's own span (rawjson times, else its lines' timestamps), else the stream's
    wall-clock time, else the sum of the step durations it printed."""
    if build.json_started is not None and build.json_completed is not None:
        span = build.json_completed - build.json_started
        if 0 <= span <= MAX_SPAN:
            return span
    if build.stamped_lines >= 2:
        first, last = prefix_seconds(build.first_stamp), prefix_seconds(build.last_stamp)
        if first is not None and last is not None and 0 <= last - first <= MAX_SPAN:
            return last - first
    if wall_clock is not None:
        return wall_clock
    return sum(s.duration or 0.0 for s in steps)


def first_in_dockerfile_order(steps: list[Step], candidates: list[Step]) -> Step:
    """The candidate that comes first in Dockerfile order."""
    rank = stage_order(steps)
    return min(candidates, key=lambda s: (rank.get(s.stage, len(rank)), s.index or 0, s.seen))


def stage_order(steps: list[Step]) -> dict[str, int]:
    """Stages in printed order, except that a stage named by a ``COPY --from`` comes before
    the stage that copies from it (Dockerfile stages can only copy from earlier ones)."""
    printed: list[str] = []
    for step in steps:
        if step.index is not None and step.stage not in printed:
            printed.append(step.stage)
    needs: dict[str, set[str]] = {stage: set() for stage in printed}
    for step in steps:
        source = copied_stage(step.instruction)
        if step.kind == "step" and source in needs and source != step.stage:
            needs[step.stage].add(source)
    order: list[str] = []
    while len(order) < len(printed):
        waiting = [s for s in printed if s not in order]
        ready = [s for s in waiting if needs[s] <= set(order)]
        order.append((ready or waiting)[0])  # a cycle cannot happen in a Dockerfile
    return {stage: rank for rank, stage in enumerate(order)}


def copied_stage(instruction: str) -> str | None:
    """The stage a ``COPY --from=`` reads (``--from=0`` is BuildKit's ``stage-0``)."""
    match = _COPY_FROM.search(instruction)
    if match is None:
        return None
    source = match.group(1)
    return f"stage-{source}" if source.isdigit() else source


def record(step: Step) -> dict[str, Any]:
    """One step as the JSON summary lists it."""
    return {
        "stage": step.stage, "platform": step.platform, "index": step.index,
        "name": step.name, "kind": step.kind, "status": step.status,
        "lookup": step.lookup, "cached": step.hit, "duration": step.duration,
        "error": step.error,
    }
