"""The client side of build ingestion: parse a live build, report it, send it to the exporter.

The build's own output is passed through untouched and unbuffered; cachewatch's report goes to
stderr, so ``2>`` captures it (``--json`` for CI job reports) without mixing it into the log.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from typing import IO

from .buildlog import BuildSummary, complete_lines, now
from .buildlog.split import BuildSplitter, repository

SEND_ATTEMPTS = 3  # a 503 (state store busy) is retried; anything else is reported at once
NO_BUILD = 3  # ingest-build's exit code when the log shows no build at all


def from_stream(stream: IO[bytes], image: str, target: str, exit_code: int | None = None,
                out: IO[bytes] | None = None) -> list[BuildSummary]:
    """Parse a log of any number of builds from ``stream`` while copying every byte to
    ``out`` (stdout).

    A build's duration is the log's own (CI timestamps, rawjson times) when it has them:
    a piped saved log streams in a blink. Otherwise it is the time the stream took.
    """
    parser, seconds, interrupted = _read(stream, out)
    return parser.finish(image, target, 130 if interrupted else exit_code, duration=seconds)


def _read(stream: IO[bytes], out: IO[bytes] | None = None
          ) -> tuple[BuildSplitter, float, bool]:
    """Feed the whole stream to a splitter: (splitter, wall-clock seconds, interrupted).

    If whoever reads our output goes away (``| head``), copying stops but reading goes on:
    the build is never left blocked on a full pipe, and the summary stays complete. Ctrl-C
    ends the reading and still gives the summary of what was seen.
    """
    sink = out if out is not None else sys.stdout.buffer
    parser = BuildSplitter(clock=now)
    started = now()
    copying = True

    def tee(chunk: bytes) -> None:
        nonlocal copying
        if copying:
            try:
                sink.write(chunk)
                sink.flush()
            except BrokenPipeError:
                copying = False

    interrupted = False
    try:
        for piece in complete_lines(stream, tee=tee):
            parser.feed_data(piece)
    except KeyboardInterrupt:
        interrupted = True
    return parser, now() - started, interrupted


def run(command: list[str], image: str, target: str) -> tuple[list[BuildSummary], int]:
    """Run ``command`` (stdout and stderr merged), stream and parse it; return its exit code.

    The exit code outranks the log: a command that failed is a failed build, one that
    succeeded is a successful build even if its log looks cut off.
    """
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as exc:
        print(f"cachewatch: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        sys.exit(127)
    assert proc.stdout is not None
    parser, seconds, interrupted = _read(proc.stdout)
    if interrupted:  # Ctrl-C reached us while streaming
        proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.kill()
        code = proc.wait()
    if interrupted and code >= 0:
        code = code or 130
    if code < 0:  # killed by a signal: report it the way a shell would
        code = 128 - code
    return parser.finish(image, target, code, duration=seconds), code


def tag_of(command: list[str]) -> str:
    """The repository of the first ``-t``/``--tag`` of a build command, or ``""``."""
    for index, word in enumerate(command):
        value = None
        if word in ("-t", "--tag") and index + 1 < len(command):
            value = command[index + 1]
        elif word.startswith("--tag="):
            value = word.removeprefix("--tag=")
        elif word.startswith("-t") and len(word) > 2 and not word.startswith("--"):
            value = word[2:]
        if value:
            return repository(value)
    return ""


def deliver(summaries: list[BuildSummary], url: str, token: str | None,
            as_json: bool) -> bool:
    """Print the report on stderr and send each build; a failed send never fails the build.
    ``False`` (and one line saying so) when the log shows no build at all."""
    if not summaries:
        print("cachewatch: no docker build in this log (nothing counted): was it "
              "`docker build ... 2>&1`?", file=sys.stderr)
        return False
    shown = []
    for summary in summaries:
        sent = send(summary, url, token) if url else "not sent (no --url)"
        shown.append({**summary.to_dict(), "sent": sent})
        if not as_json:
            print(human(summary, sent), file=sys.stderr)
    if as_json:
        document = shown[0] if len(shown) == 1 else {"builds": shown}
        print(json.dumps(document, indent=2), file=sys.stderr)
    return True


def send(summary: BuildSummary, url: str, token: str | None, build_id: str | None = None
         ) -> str:
    """POST the summary to the exporter under ``build_id`` (a new one by default); return
    what happened, in words."""
    payload = {"image": summary.image, "target": summary.target,
               "id": build_id or str(uuid.uuid4()),
               "summary": {k: v for k, v in summary.to_dict().items() if k != "records"}}
    return post(url, "/api/v1/builds", payload, token)


def post(url: str, path: str, payload: dict[str, object], token: str | None,
         sender: str = "build") -> str:
    """POST ``payload`` to the exporter, again on 503 (the same id: counted once whatever
    happened); return what happened, in words."""
    import httpx  # here, not at the top: it is most of this command's start-up time

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    endpoint = url.rstrip("/") + path
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            response = httpx.post(endpoint, json=payload, headers=headers, timeout=10)
        except httpx.HTTPError as exc:
            return f"not sent: {endpoint} unreachable ({exc}); the {sender} itself is unaffected"
        # 503: the exporter could not store it now. The same id is sent again, so what the
        # exporter did store after all is still counted once.
        if response.status_code != 503 or attempt == SEND_ATTEMPTS:
            break
        time.sleep(_retry_after(response.headers.get("retry-after")))
    if response.status_code >= 300:
        return f"not sent: {endpoint} answered {response.status_code} {response.text.strip()}"
    return f"sent to {url}"


def _retry_after(value: str | None) -> float:
    """Seconds to wait before the next try: the server's hint (seconds form), 1 s to 5 s."""
    try:
        return min(5.0, max(1.0, float(value or 1)))
    except ValueError:  # the HTTP-date form
        return 1.0


def human(summary: BuildSummary, sent: str) -> str:
    """The one-screen report: hit rate, time lost, the cache buster."""
    target = f" (target {summary.target})" if summary.target else ""
    lines = [f"cachewatch: build of {summary.image}{target}: {summary.status} in "
             f"{summary.duration_seconds:.1f}s ({summary.format})"]
    if summary.lookups:
        ratio = summary.hits / summary.lookups
        lines.append(f"  layer cache: {summary.hits}/{summary.lookups} steps cached "
                     f"({ratio:.0%}), {summary.executed_seconds:.1f}s spent running steps")
    else:
        lines.append("  layer cache: no cacheable steps seen (is this a docker build log?)")
    if summary.cache_buster:
        lines.append(f"  cache buster: {summary.cache_buster}")
        lines.append(f"    every step after it ran again: {summary.rebuild_seconds:.1f}s "
                     "re-running; put what changes often below what changes rarely")
    elif summary.lookups and not summary.hits:
        lines.append("  cold build: nothing was cached yet (or the first step missed)")
    if summary.error:
        lines.append(f"  error: {summary.error}")
    if summary.truncated:
        lines.append("  log cut off: the build's end is not in it; the counts are what it shows")
    lines.append(f"  {sent}")
    return "\n".join(lines)
