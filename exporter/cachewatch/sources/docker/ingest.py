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

from .buildlog import BuildLogParser, BuildSummary, now, stream_lines

SEND_ATTEMPTS = 3  # a 503 (state store busy) is retried; anything else is reported at once


def from_stream(stream: IO[bytes], image: str, target: str, exit_code: int | None = None,
                out: IO[bytes] | None = None) -> BuildSummary:
    """Parse a build log from ``stream`` while copying every byte to ``out`` (stdout).

    The build's duration is the log's own (CI timestamps, rawjson times) when it has them:
    a piped saved log streams in a blink. Otherwise it is the time the stream took.
    """
    parser, seconds, interrupted = _read(stream, out)
    return parser.finish(image, target, 130 if interrupted else exit_code, duration=seconds)


def _read(stream: IO[bytes], out: IO[bytes] | None = None
          ) -> tuple[BuildLogParser, float, bool]:
    """Feed the whole stream to a parser: (parser, wall-clock seconds, interrupted).

    If whoever reads our output goes away (``| head``), copying stops but reading goes on:
    the build is never left blocked on a full pipe, and the summary stays complete. Ctrl-C
    ends the reading and still gives the summary of what was seen.
    """
    sink = out if out is not None else sys.stdout.buffer
    parser = BuildLogParser(clock=now)
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
        for line in stream_lines(stream, tee=tee):
            parser.feed(line)
    except KeyboardInterrupt:
        interrupted = True
    return parser, now() - started, interrupted


def run(command: list[str], image: str, target: str) -> tuple[BuildSummary, int]:
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


def deliver(summary: BuildSummary, url: str, token: str | None, as_json: bool) -> None:
    """Print the report on stderr and send the summary; a failed send never fails the build."""
    sent = send(summary, url, token) if url else "not sent (no --url)"
    if as_json:
        print(json.dumps({**summary.to_dict(), "sent": sent}, indent=2), file=sys.stderr)
    else:
        print(human(summary, sent), file=sys.stderr)


def send(summary: BuildSummary, url: str, token: str | None) -> str:
    """POST the summary to the exporter; return what happened, in words."""
    import httpx  # here, not at the top: it is most of this command's start-up time

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    payload = {"image": summary.image, "target": summary.target, "id": str(uuid.uuid4()),
               "summary": {k: v for k, v in summary.to_dict().items() if k != "records"}}
    endpoint = url.rstrip("/") + "/api/v1/builds"
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            response = httpx.post(endpoint, json=payload, headers=headers, timeout=10)
        except httpx.HTTPError as exc:
            return f"not sent: {endpoint} unreachable ({exc}); the build itself is unaffected"
        # 503: the exporter could not store it now. The same id is sent again, so a build the
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
        lines.append(f"  cache buster: {summary.cache_buster_step}")
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
