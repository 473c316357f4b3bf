"""``cachewatch_dockerfile_findings{image,rule}``: doctor's findings for the configured Dockerfiles.

Dashboards show them next to each image's build hit rate, so a falling rate and the Dockerfile
line that explains it are seen together. Each file (``builds.dockerfiles``: image -> path, its
folder taken as the build context) is analysed again only when it, its ignore file or the
presence of ``.git`` changes. The files are checked on a thread of their own: at start-up
(``serve`` waits for that first check at most ``STARTUP_WAIT`` seconds) and then at most every
``REFRESH_SECONDS``, started by a scrape that finds the last check older. A scrape only reads
what the last check found, so a file system that stalls (a hung network mount) never holds up
``/metrics``; a check running longer than ``STALL_SECONDS`` withdraws the findings (stale
numbers would pass for current ones) and counts ``reason="stalled"`` once. Every rule gets a
sample, 0 included, so a clean
Dockerfile shows as clean rather than as missing.

A file that cannot be read is never a failed scrape: its image has no samples until it can be
read again, ``cachewatch_collector_errors_total{collector="dockerfile"}`` counts each failed
read, and the problem is logged once (again only after it was solved and came back).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from ...metrics.contract import Families
from . import contract
from .doctor import RULES, analyze, dockerignore_for

log = logging.getLogger("cachewatch.dockerfiles")

COLLECTOR = "dockerfile"  # the `collector` label of its errors
MAX_BYTES = 1024 * 1024  # a Dockerfile is a few kilobytes; anything this big is not one
REFRESH_SECONDS = 5.0  # how stale the findings may get: a Dockerfile edit shows within this
STARTUP_WAIT = 2.0  # start-up waits this long for the first check, then serves without it
STALL_SECONDS = 30.0  # a check running this long is stuck: its findings are withdrawn

Fingerprint = tuple[object, ...]


class DockerfileFindings:
    """Findings per rule of each configured Dockerfile, re-analysed when the files change."""

    def __init__(self, dockerfiles: Mapping[str, Path],
                 refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._files = dict(dockerfiles)
        self._lock = threading.Lock()  # guards what a scrape reads: _found and _errors
        self._cache: dict[str, tuple[Fingerprint, dict[str, int]]] = {}
        self._found: dict[str, dict[str, int]] = {}  # image -> counts, readable files only
        self._errors: dict[tuple[str, str], int] = defaultdict(int)
        self._failing: dict[str, str] = {}  # image -> reason already logged
        self.analyses = 0  # how many times a file was analysed (not served from the cache)
        self._refresh_seconds = refresh_seconds
        self._checking = threading.Lock()  # held by the one check running
        self._checked_at = self._started_at = 0.0
        self._stall_counted = False
        first = self._start_check()
        if first is not None:
            first.join(STARTUP_WAIT)

    def add_to(self, out: Families) -> None:
        """Add what the last check found (and the read errors so far) to a scrape; start the
        next check on its own thread when the last is older than the refresh interval."""
        now = time.monotonic()
        if now - self._checked_at >= self._refresh_seconds:
            self._start_check()
        stalled = self._checking.locked() and now - self._started_at > STALL_SECONDS
        with self._lock:
            if stalled and not self._stall_counted:
                self._stall_counted = True
                for image in self._files:
                    self._errors[(image, "stalled")] += 1
                log.warning("Dockerfile check stalled: findings withdrawn until it ends",
                            extra={"seconds": round(now - self._started_at)})
            for image, counts in () if stalled else self._found.items():
                for rule in RULES:
                    out.add(contract.DOCKERFILE_FINDINGS, {"image": image, "rule": rule},
                            counts.get(rule, 0))
            for (image, reason), count in self._errors.items():
                out.add(contract.COLLECTOR_ERRORS,
                        {"collector": COLLECTOR, "target": image, "reason": reason}, count)

    def refresh(self) -> None:
        """Check every file now, on the caller's thread (what a test waits for); waits for a
        check already running."""
        with self._checking:
            self._check()

    def _start_check(self) -> threading.Thread | None:
        """Start a check on its own thread, unless one is running."""
        if not self._checking.acquire(blocking=False):
            return None
        self._started_at = time.monotonic()
        thread = threading.Thread(target=self._refresh_held, name="dockerfile-findings",
                                  daemon=True)
        thread.start()
        return thread

    def _refresh_held(self) -> None:
        try:
            self._check()
        finally:
            self._checked_at = time.monotonic()  # a failed check waits its interval too
            with self._lock:
                self._stall_counted = False
            self._checking.release()

    def _check(self) -> None:
        """Stat each file, analyse the changed ones, and publish the result for scrapes."""
        found = {}
        for image, path in self._files.items():
            counts = self._counts(image, path)
            if counts is not None:
                found[image] = counts
        with self._lock:
            self._found = found

    def _counts(self, image: str, path: Path) -> dict[str, int] | None:
        """Findings per rule, from the cache while the files are unchanged; None if unreadable."""
        try:
            fingerprint = _fingerprint(path)
            cached = self._cache.get(image)
            if cached is not None and cached[0] == fingerprint:
                counts = cached[1]
            else:
                counts = self._analyze(path)
                self._cache[image] = (fingerprint, counts)
        except OSError as exc:
            self._failed(image, path, _reason(exc), str(exc))
            return None
        except _TooLarge:
            self._failed(image, path, "too_large", f"larger than {MAX_BYTES} bytes")
            return None
        except Exception as exc:  # a doctor bug must not stop the checks of every file
            self._failed(image, path, "analysis_error", f"{type(exc).__name__}: {exc}")
            return None
        if self._failing.pop(image, None) is not None:
            log.info("Dockerfile readable again", extra={"image": image, "path": str(path)})
        return counts

    def _analyze(self, path: Path) -> dict[str, int]:
        """Run doctor's rules on the file, its folder as the build context."""
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise _TooLarge
        context = path.parent
        findings = analyze(data.decode("utf-8", "replace"), path.name, dockerignore_for(path),
                           vcs_in_context=(context / ".git").exists())
        self.analyses += 1
        counts: dict[str, int] = defaultdict(int)
        for finding in findings:
            counts[finding.rule] += 1
        return dict(counts)

    def _failed(self, image: str, path: Path, reason: str, detail: str) -> None:
        self._cache.pop(image, None)
        with self._lock:
            self._errors[(image, reason)] += 1
        if self._failing.get(image) != reason:
            self._failing[image] = reason
            log.warning("cannot read Dockerfile", extra={
                "image": image, "path": str(path), "reason": reason, "error": detail})


class _TooLarge(Exception):
    """The configured file is too big to be a Dockerfile."""


def _ignore_files(path: Path) -> tuple[Path, Path]:
    """The ignore files ``dockerignore_for`` reads: ``<Dockerfile>.dockerignore``, then the
    context's ``.dockerignore``."""
    return path.with_name(path.name + ".dockerignore"), path.parent / ".dockerignore"


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def _fingerprint(path: Path) -> Fingerprint:
    """What the findings depend on; raises OSError when the Dockerfile itself is unreadable."""
    info = os.stat(path)
    if not path.is_file():
        raise IsADirectoryError(f"{path} is not a file")
    return ((info.st_mtime_ns, info.st_size, info.st_ino),
            *(_stat(candidate) for candidate in _ignore_files(path)),
            (path.parent / ".git").exists())


def _reason(exc: OSError) -> str:
    """The ``reason`` label of a failed read."""
    if isinstance(exc, FileNotFoundError):
        return "missing"
    if isinstance(exc, PermissionError):
        return "permission"
    return "unreadable"
