"""Every kind of build-log line the parser knows, and what each one does: ``LINE_KINDS``.

A line is whatever prefix a tool put in front (a CI timestamp, ``[INFO] ``, `` DEBUG [b771957d]
<TAB>``, ``docker stdout: ``), then a *marker*: the first place in the line where one of the
patterns below matches. The prefix is skipped (its timestamp, if any, is kept for the build's
duration); the kind of the leftmost marker decides what the line does. So ``#7 16.83 Step 1/2 :``
is output of vertex 7, never a legacy step, and a line with no marker changes nothing.

The table is in precedence order: where two patterns match at the same place, the first wins.
``timed`` kinds carry the build's own timestamps; output and layer progress are skipped by the
fast path (``scan``) and so are never used for time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from .model import MAX_NAME_CHARS, Label, classify
from .rawjson import apply as apply_rawjson
from .state import BuildState

Handler = Callable[[BuildState, "re.Match[str]"], None]


@dataclass(frozen=True)
class LineKind:
    """One kind of line: where it starts (``markers``), what it is (``pattern``, matched
    there) and what it does (``handler``).

    Each marker starts with a plain character, so one regex search skips in C to the next
    place a marker may start. ``VERTEX`` kinds share the marker ``#<vertex> ``: their pattern
    is what follows it, and the vertex number is the match's ``vertex`` group.
    """

    name: str  # also the regex group that matched: inner groups are prefixed with it
    markers: tuple[str, ...]
    pattern: str
    handler: Handler
    example: str
    timed: bool = True


# --- BuildKit --progress=plain: "#<vertex> ..." ---------------------------------------------

def on_output(build: BuildState, m: re.Match[str]) -> None:
    """The step's own output: a command ran, so the step is a miss however it ends (a step
    cancelled before printing anything never started and is not counted)."""
    build.mark_ran("#" + m["vertex"])


def ignore(build: BuildState, m: re.Match[str]) -> None:
    """Known, and changes nothing: listed so the table shows every line the parser knows and
    so the rest of the line is never read as another kind."""


def on_banner(build: BuildState, m: re.Match[str]) -> None:
    """``#0 building with "default" instance``: buildx's opening line, not a vertex (it never
    gets a DONE); it says the log is BuildKit's."""
    build.claim("buildkit-plain")
    build.banner = True


def on_cached(build: BuildState, m: re.Match[str]) -> None:
    """The vertex came from the cache: a hit (a FROM printed CACHED makes the build warm).
    CACHED may come after an earlier DONE of the same vertex (FROMs do this): the last
    state printed wins."""
    step = build.steps.get("#" + m["vertex"])
    if step is not None:
        step.status, step.duration, step.error = "cached", 0.0, None


def on_done(build: BuildState, m: re.Match[str]) -> None:
    """The vertex finished: it ran (a miss), unless it only pulled layers from an imported
    cache (see ``Step.remote_hit``)."""
    step = build.steps.get("#" + m["vertex"])
    if step is not None:
        seconds = m["done_seconds"]
        step.status, step.error = "done", None
        step.duration = float(seconds) if seconds else step.duration


def on_error(build: BuildState, m: re.Match[str]) -> None:
    """The vertex failed: it ran, so it is a miss, and the build failed (unless a retry of
    the same vertex then prints DONE)."""
    text = m["error_text"].strip() or "ERROR"
    step = build.steps.get("#" + m["vertex"])
    if step is None:
        build.fail(text)  # its name was cut from the log; the failure still counts
        return
    step.status, step.error = "error", text


def on_canceled(build: BuildState, m: re.Match[str]) -> None:
    """The vertex was cancelled (Ctrl-C, or another step failed). Counted as a miss only if it
    had printed output: then it was cut off while running."""
    step = build.steps.get("#" + m["vertex"])
    if step is not None:
        step.status = "canceled"


def on_extracting(build: BuildState, m: re.Match[str]) -> None:
    """The vertex unpacks a layer it pulled: a base image for a FROM, or a step's result
    from an imported cache (``--cache-from``) when the step prints nothing else."""
    step = build.steps.get("#" + m["vertex"])
    if step is not None:
        step.pulled = True


def on_vertex(build: BuildState, m: re.Match[str]) -> None:
    """The first line of a vertex number names it (``#5 [builder 2/5] RUN make``); a name
    printed again (a retry, a log printed twice, one compose vertex under two services)
    changes nothing: the vertex counts once. Later ``#5 <text>`` lines are its status
    (``transferring context``, ``resolve``, ``WARN:``): nothing to count."""
    key, text = "#" + m["vertex"], m["named_text"]
    step = build.steps.get(key)
    if step is None:
        label = classify(text)
        if label.kind == "internal":
            build.serve(label.service)
        if build.add(key, text, label) is not None and (text.startswith("[") or
                                                        label.kind == "from"):
            build.claim("buildkit-plain")
    elif text.startswith("["):
        label = classify(text)
        if step.index is None and label.index is not None:
            build.rename(step, text)
        elif label.kind == "internal":
            build.serve(label.service)
        else:
            build.share(step, label.service)


def on_naming(build: BuildState, m: re.Match[str]) -> None:
    """``#12 naming to docker.io/library/app:1.0 done``: the image the build makes (its
    repository names the build when the log holds several)."""
    build.name(m["naming_ref"])


# --- the legacy builder: "Step k/N : ..." and " ---> ..." -----------------------------------

def on_step(build: BuildState, m: re.Match[str]) -> None:
    """Closes the step before it (one that printed nothing more, like an ARG, is over: it
    ran) and opens this one. A FROM opens a stage and is never a lookup; every other step is
    (its ``Using cache`` or not decides hit or miss). A step number seen again is the same
    step: the log was printed twice. (Podman numbers each stage's steps from 1, behind a
    ``[stage/stages]`` prefix.)"""
    build.claim("legacy")
    cursor = build.legacy
    close_legacy_step(build)
    cursor.podman = cursor.podman or m["step_word"] == "STEP"
    number, total, instruction = m["step_number"], m["step_total"], m["step_instruction"]
    key = f"step-{m['step_stage']}-{number}" if m["step_stage"] else f"step-{number}"
    step = build.steps.get(key)
    if step is None:
        is_from = instruction.split(" ", 1)[0].upper() == "FROM"
        if is_from:
            alias = re.search(r"\bAS\s+(\S+)\s*$", instruction, re.IGNORECASE)
            cursor.stage = alias.group(1) if alias else f"stage-{cursor.stages}"
            cursor.stages += 1
        label = Label("from" if is_from else "step", instruction, cursor.stage, "",
                      int(number), int(total) if total else None)
        of = f"/{total}" if total else ""
        step = build.add(key, f"Step {number}{of} : {instruction}", label)
        if step is not None and build.clock is not None:
            step.started_at = build.clock()
    else:
        cursor.stage = step.stage
    cursor.current = step


def on_using_cache(build: BuildState, m: re.Match[str]) -> None:
    """`` ---> Using cache``: the open step came from the cache: a hit. (A FROM never says it:
    its `` ---> <id>`` is the base image, not a cache hit.)"""
    current = build.legacy.current
    if current is not None and current.kind == "step":
        current.status = "cached"


def on_running_in(build: BuildState, m: re.Match[str]) -> None:
    """`` ---> Running in 3f2a1b``: the open step runs a container: a miss, even if the log
    is cut before it ends."""
    if build.legacy.current is not None:
        build.legacy.current.ran = True


def on_layer(build: BuildState, m: re.Match[str]) -> None:
    """`` ---> 58d55bcc9f5f``: the open step's resulting layer: the step is over (a hit if it
    said ``Using cache``, else it ran: a miss). Later lines belong to no step."""
    close_legacy_step(build)


def on_built(build: BuildState, m: re.Match[str]) -> None:
    """``Successfully built <id>`` (Podman: ``Successfully tagged``): the build finished.
    ``Successfully tagged app:1.0`` also names the image."""
    close_legacy_step(build)
    build.legacy.success = True
    if m.group(0).startswith("Successfully tagged "):
        build.name(m.group(0).removeprefix("Successfully tagged "))


def on_cli_error(build: BuildState, m: re.Match[str]) -> None:
    """The docker command's own error (``unknown flag: --progress``, a missing Dockerfile,
    no daemon): before any step it is the build's failure, a build that never started.
    During a legacy step, the daemon's error is that step's failure; otherwise it is another
    command's and changes nothing."""
    if not build.steps:
        build.cli_error = build.cli_error or m.group(0)[:MAX_NAME_CHARS]
        build.fail(m.group(0))
    elif build.legacy.current is not None and m.group(0).startswith("Error response"):
        on_step_failed(build, m)


def on_commit(build: BuildState, m: re.Match[str]) -> None:
    """Podman's ``COMMIT <image>`` after its last step: the build finished (its last step
    prints no layer of its own). Only in a log with Podman's ``STEP`` lines: elsewhere it is
    a step's output (``psql`` prints ``COMMIT``)."""
    if build.legacy.podman:
        on_built(build, m)


def on_step_failed(build: BuildState, m: re.Match[str]) -> None:
    """``The command '...' returned a non-zero code: 2`` / ``COPY failed: ...`` / Podman's
    ``Error: building at STEP ...``: the open step failed (a miss), and so did the build."""
    text = m.group(0)
    current = build.legacy.current
    if current is not None:
        current.status, current.error = "error", text
        current.duration = build.elapsed(current)
        build.legacy.current = None
    build.fail(text)


# --- both BuildKit formats --------------------------------------------------------------------

def on_solve_failed(build: BuildState, m: re.Match[str]) -> None:
    """``ERROR: failed to solve: ...``: BuildKit's closing line of a build that did not
    succeed. ``... context canceled`` means it was cancelled (Ctrl-C, a CI timeout), not that
    a step failed."""
    text = m["solve_failed_text"] or m["build_failed_text"]
    build.fail(text, cancelled="context canceled" in text)


def on_rawjson(build: BuildState, m: re.Match[str]) -> None:
    """``{"vertexes": [...], "statuses": [...], "logs": [...]}``: one SolveStatus record of
    ``--progress=rawjson``; vertices are keyed by digest and follow the plain rules."""
    record = json.loads(m.group(0))
    if isinstance(record, dict):
        apply_rawjson(build, record)


def close_legacy_step(build: BuildState) -> None:
    """End the open legacy step: still ``running`` means it finished without a word."""
    cursor = build.legacy
    step = cursor.current
    if step is None:
        return
    if step.status == "running":
        step.status = "done"
    if step.duration is None:
        elapsed = build.elapsed(step)
        step.duration = 0.0 if elapsed is None and step.status == "cached" else elapsed
    cursor.current, cursor.last_closed = None, step


VERTEX = (r"#\d+ ",)  # BuildKit plain: "#<vertex> ", then the kind's pattern
ARROW = ("--?->",)  # the legacy builder's " ---> ", Podman's "--> "

LINE_KINDS: tuple[LineKind, ...] = (
    # BuildKit --progress=plain
    LineKind("output", VERTEX, r"\d", on_output,
             "#7 16.83 make: Entering directory", timed=False),
    LineKind("clipped", VERTEX, r"\[output clipped", on_output,
             "#7 [output clipped, log limit 2MiB reached]"),
    LineKind("progress", VERTEX, r"sha256:", ignore,
             "#6 sha256:0a96bd... 3.15MB / 48.50MB 0.1s", timed=False),
    LineKind("banner", VERTEX, r"(?<=#0 )", on_banner,
             '#0 building with "default" instance using docker driver'),
    LineKind("cached", VERTEX, r"CACHED\b", on_cached,
             "#6 CACHED"),
    LineKind("done", VERTEX, r"DONE(?: (?P<done_seconds>\d+(?:\.\d+)?)s)?\b", on_done,
             "#6 DONE 0.4s"),
    LineKind("error", VERTEX, r"ERROR\b:? ?(?P<error_text>.*)", on_error,
             "#7 ERROR: process ... did not complete successfully: exit code: 1"),
    LineKind("canceled", VERTEX, r"CANCELED\b", on_canceled,
             "#9 CANCELED"),
    LineKind("paused", VERTEX, r"\.\.\.", ignore,
             "#8 ..."),
    LineKind("extracting", VERTEX, r"extracting sha256:", on_extracting,
             "#17 extracting sha256:fe0768... 0.1s done"),
    LineKind("naming", VERTEX, r"naming to (?P<naming_ref>[^\s,]+)", on_naming,
             "#12 naming to docker.io/library/app:1.0 done"),
    LineKind("named", VERTEX, r"(?P<named_text>.*)", on_vertex,
             "#5 [builder 2/5] RUN make / #5 transferring context: 2B done"),
    # the legacy builder (and Podman's "docker" on Fedora/RHEL: "STEP 2/5:", "-->", "COMMIT")
    LineKind("step", (r"Step \d+(?:/\d+)? : ", r"STEP \d+(?:/\d+)?: ", r"\[\d+/\d+\] STEP "),
             r"(?:\[(?P<step_stage>\d+)/\d+\] )?(?P<step_word>Step|STEP) (?P<step_number>\d+)"
             r"(?:/(?P<step_total>\d+))? ?: (?P<step_instruction>.*)",
             on_step, "Step 3/8 : COPY app.txt /app.txt / [2/2] STEP 3/5: COPY app.txt /"),
    LineKind("using_cache", ARROW, r"---?> Using cache\b", on_using_cache,
             " ---> Using cache"),
    LineKind("running_in", ARROW, r"---?> Running in \w+", on_running_in,
             " ---> Running in 5d3324a494b2"),
    LineKind("removed", ARROW, r"---?> Removed intermediate container\b", ignore,
             " ---> Removed intermediate container bcf4299db339"),
    LineKind("layer", ARROW, r"---?> ?(?:[0-9a-f]{6,64})?\s*$", on_layer,
             " ---> 58d55bcc9f5f"),
    LineKind("arrow", ARROW, r"---?>", ignore,
             " ---> (anything else: step output that happens to hold an arrow)"),
    LineKind("built", ("Successfully built ", "Successfully tagged "),
             r"Successfully (?:built|tagged) \S*", on_built, "Successfully built 58d55bcc9f5f"),
    LineKind("commit", ("COMMIT",), r"COMMIT(?: \S+)?\s*$", on_commit,
             "COMMIT localhost/app:1.0"),
    LineKind("command_failed", ("The command '",),
             r"The command '.*' returned a non-zero code: \d+", on_step_failed,
             "The command '/bin/sh -c make' returned a non-zero code: 2"),
    LineKind("copy_failed", ("COPY failed: ", "ADD failed: "), r"(?:COPY|ADD) failed: .*",
             on_step_failed, "COPY failed: file not found in build context"),
    LineKind("podman_failed", ("Error: building at STEP",), r"Error: building at STEP .*",
             on_step_failed, 'Error: building at STEP "RUN make": while running runtime: exit 2'),
    # the docker command itself, before a build starts
    LineKind("cli_error", ("unknown flag: ", "unknown shorthand flag: ",
                           "unable to prepare context: ", "Cannot connect to the Docker daemon",
                           "Error response from daemon: ", '"docker build" requires ',
                           '"docker buildx build" requires '),
             r"(?:unknown (?:shorthand )?flag: |unable to prepare context: |Cannot connect to "
             r'the Docker daemon|Error response from daemon: |"docker (?:buildx )?build" '
             r"requires ).*", on_cli_error, "unknown flag: --progress"),
    # BuildKit, either format
    LineKind("solve_failed", ("ERROR: failed to ", "error: failed to ", "failed to solve"),
             r"(?:(?:ERROR|error): )?(?P<solve_failed_text>(?:failed to build: )?"
             r"failed to solve\b.*)|(?:ERROR|error): (?P<build_failed_text>failed to build\b.*)",
             on_solve_failed, "ERROR: failed to solve: process ... exit code: 1"),
    LineKind("rawjson", ("{",), r'\{[ \t]*"(?:[Vv]ertexes|[Ss]tatuses|[Ll]ogs)".*', on_rawjson,
             '{"vertexes": [{"digest": "sha256:...", "name": "[2/3] COPY ..."}]}'),
)

KINDS = {kind.name: kind for kind in LINE_KINDS}
MAX_TRIES = 16  # marker-like places tried per line: a build line's marker comes after a prefix


def _lead(marker: str) -> str:
    """The plain character a marker starts with (``\\[`` is ``[``)."""
    return marker[1] if marker.startswith("\\") else marker[0]


def kinds_led_by(lead: str) -> list[LineKind]:
    """The kinds with a marker starting with ``lead``, in table order."""
    return [k for k in LINE_KINDS if any(_lead(m) == lead for m in k.markers)]


def _kinds_led_by(lead: str) -> re.Pattern[str]:
    """The kinds with a marker starting with ``lead``, as one regex tried in table order."""
    body = "|".join(f"(?P<{k.name}>{k.pattern})" for k in kinds_led_by(lead))
    return re.compile(rf"#(?P<vertex>\d+) (?:{body})" if lead == "#" else body)


_MARKERS = list(dict.fromkeys(m for kind in LINE_KINDS for m in kind.markers))
_MARKER_START = re.compile("|".join(_MARKERS))
_BY_LEAD = {lead: _kinds_led_by(lead) for lead in {_lead(m) for m in _MARKERS}}


def find_marker(text: str, start: int = 0, end: int | None = None) -> re.Match[str] | None:
    """The leftmost marker of any kind in ``text`` (its ``lastgroup`` names the kind), or in
    its line ``text[start:end]`` read in place (``end`` is where the line ends)."""
    end = len(text) if end is None else end
    first = _BY_LEAD.get(text[start:start + 1]) if start < end else None  # most: no prefix
    if first is not None and (match := first.match(text, start, end)) is not None:
        return match
    pos = start
    for _ in range(MAX_TRIES):
        found = _MARKER_START.search(text, pos, end)
        if found is None:
            return None
        at = found.start()
        match = _BY_LEAD[text[at]].match(text, at, end)
        if match is not None:
            return match
        pos = at + 1
    return None
