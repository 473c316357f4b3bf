"""A whole CI job's log -> its Docker builds and its CI caches, printed and sent.

The log is read once, in bounded memory: every line goes to the CI cache reader
(``joblog``), and the lines a build could use to the Docker source's build splitter (a job
may hold several builds; a stray ``docker`` error in a job's output is no build). Everything
is sent under ids derived from the log's content, so sending the same log again (a retried
CI step) counts nothing twice; a 503 is retried with the same id.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from typing import IO, Any

from ..docker.buildlog import BuildSplitter, BuildSummary, relevant_lines
from ..docker.ingest import human, post, send
from .joblog import JobLogReader, Restore, Save

CHUNK_BYTES = 1 << 20
MAX_LINE_BYTES = 256 * 1024


@dataclass
class Job:
    """What one job's log held: its builds, its cache restores and saves, its digest."""

    builds: list[BuildSummary] = field(default_factory=list)
    restores: list[Restore] = field(default_factory=list)
    saves: list[Save] = field(default_factory=list)
    digest: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document: builds as ``ingest-build --json`` prints each."""
        return {"builds": [b.to_dict() for b in self.builds],
                "ci_caches": [r.to_dict() for r in self.restores],
                "ci_cache_saves": [s.to_dict() for s in self.saves]}


def read(stream: IO[bytes], image: str = "", target: str = "") -> Job:
    """Read a whole job log from ``stream``."""
    builds = BuildSplitter(one_command=False)
    caches = JobLogReader()
    digest = hashlib.blake2b(digest_size=16)
    read_chunk = getattr(stream, "read1", stream.read)
    pending = b""
    while chunk := read_chunk(CHUNK_BYTES):
        digest.update(chunk)
        data = pending + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        _feed(data[:cut], builds, caches)
        pending = data[cut:][-MAX_LINE_BYTES:]
    _feed(pending, builds, caches)
    restores, saves = caches.finish()
    return Job(builds.finish(image, target), restores, saves, digest.hexdigest())


def _feed(data: bytes, builds: BuildSplitter, caches: JobLogReader) -> None:
    if not data:
        return
    for line in relevant_lines(data):
        builds.feed(line)
    for line in data.splitlines():
        caches.feed(line[:MAX_LINE_BYTES])


def deliver(job: Job, url: str, token: str | None, as_json: bool) -> bool:
    """Send the job's builds and caches; print the JSON alone on stdout (``as_json``) or a
    report on stderr. ``False`` when the log shows neither a build nor a CI cache."""
    if not (job.builds or job.restores or job.saves):
        print("cachewatch: no docker build and no CI cache restore or save in this log "
              "(nothing counted)", file=sys.stderr)
        return False
    sent = []
    for number, build in enumerate(job.builds, 1):
        result = send(build, url, token, f"job-{job.digest}-build-{number}") if url else \
            "not sent (no --url)"
        sent.append(result)
        if not as_json:
            print(human(build, result), file=sys.stderr)
    report = {"id": f"job-{job.digest}-ci", **job.to_dict()}
    report.pop("builds")
    ci_sent = post(url, "/api/v1/ci/caches", report, token, "job") if url and (
        job.restores or job.saves) else "not sent (no --url)" if not url else "nothing to send"
    if as_json:
        import json

        print(json.dumps(job.to_dict(), indent=2))
    else:
        print(human_caches(job, ci_sent), file=sys.stderr)
    return True


def human_caches(job: Job, sent: str) -> str:
    """One line per restore and save."""
    lines = [f"cachewatch: CI caches: {len(job.restores)} restores, {len(job.saves)} saves"]
    for restore in job.restores:
        size = f", {restore.bytes} bytes" if restore.bytes else ""
        why = f" ({restore.reason})" if restore.reason else ""
        lines.append(f"  {restore.ci} {restore.cache}: {restore.result}{size}{why}")
    lines += [f"  {save.ci} {save.cache}: saved" for save in job.saves]
    lines.append(f"  {sent}")
    return "\n".join(lines)
