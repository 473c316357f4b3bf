"""A CI job's log -> its cache restores (hit, partial, miss, bytes) and saves.

Only the CI's own restore and save lines count, matched from the start of a line's message
(after the CI's timestamp, ``gh run view --log`` columns, GitLab's stream tag and colour codes
are taken off): "cache" appears everywhere else in a job's output (npm's ``lru-cache``, the
runner's tool cache, Lighthouse audits) and means nothing here. ``RULES`` lists every line
read and what it does; the reading rules real logs need:

* GitHub Actions (``actions/cache``, ``actions/cache/restore`` and the ``setup-*`` actions'
  caches): ``Cache restored from key: K`` is a hit when K is the step's ``key:`` input (or no
  input is shown: the ``setup-*`` actions have no restore keys), else a ``partial`` hit on a
  restore key; ``Cache not found for input keys`` and ``<tool> cache is not found`` are
  misses. The size is ``Cache Size: ~N MB (B B)``. ``Cache saved with key`` is a save; a hit
  on the primary key saves nothing. A failed job runs no post steps, so it has no saves.
* GitLab CI ``cache:``: ``Checking cache for K...`` opens a restore; ``Successfully extracted
  cache`` is a hit, ``Failed to extract cache`` a miss (the warning before it is the reason).
  A ``fallback_keys`` entry (``Checking cache for K (fallback)...``) belongs to the same
  restore: partial if it restored, one miss if all missed. ``Creating cache K...`` then
  ``Created cache`` is a save, unless ``Archive is up to date!`` said nothing was uploaded.
  GitLab's key suffixes (``-protected``, ``-non_protected``, a clear counter) are not the name.
* CircleCI: ``Found a cache from build N at K`` (its ``Size:`` the bytes) is a hit, partial
  when a ``No cache is found for key`` came first or when the job then stores another key
  under the same name; ``Error untarring cache`` makes it a miss with that reason. ``Stored
  Cache to K`` is a save.
* Azure Pipelines ``Cache@2``: ``Entry found at fingerprint: `F``` is a hit when F is the
  first ``Resolved to:`` (the key), else partial; ``Saved item.`` is a save.

A cache is named by its key's stable prefix (``keys.stable_name``), never the full key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .keys import ref_slug, stable_name

Result = Literal["hit", "partial", "miss"]
MAX_EVENTS = 10_000  # restores and saves kept per job; a real job has a handful
MAX_LINE_CHARS = 64 * 1024
MAX_REASON_CHARS = 512

# Colour codes; a trace copied from a web page keeps them without their escape byte
# (``[32;1mChecking cache for main-protected...[0;m``).
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\[[0-9;]*[mK]")
_PREFIX = re.compile(
    r"(?:[^\t\n]*\t[^\t\n]*\t)?"  # gh run view --log: job<TAB>step<TAB>
    r"(?:\ufeff)?(?:\d{4}-\d\d-\d\dT[\d:.]+Z?\s?)?"  # the runner's timestamp
    r"(?:\d\d[OE]\+?\s?)?"  # GitLab's stream tag (01O, 00O+)
    r"(?:##\[(?:group|endgroup|debug|warning|error|notice)\])?\s*")
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10,
          "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
# setup-* actions' cache key prefixes, by the tool their "<tool> cache is not found" names.
_SETUP_PREFIX = {"npm": "node-cache-", "yarn": "node-cache-", "pnpm": "node-cache-",
                 "pip": "setup-python-", "pipenv": "setup-python-", "poetry": "setup-python-",
                 "maven": "setup-java-", "gradle": "setup-java-", "sbt": "setup-java-"}


@dataclass
class Restore:
    """One restore of one cache: hit, partial (a fallback key restored) or miss."""

    ci: str
    cache: str
    result: Result
    bytes: int = 0
    key: str = ""
    reason: str | None = None  # why a found cache was not restored

    def to_dict(self) -> dict[str, object]:
        shown: dict[str, object] = {"ci": self.ci, "cache": self.cache, "result": self.result,
                                    "bytes": self.bytes}
        if self.reason:
            shown["reason"] = self.reason
        return shown


@dataclass
class Save:
    """One cache saved (uploaded) by the job."""

    ci: str
    cache: str
    bytes: int = 0
    key: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"ci": self.ci, "cache": self.cache, "bytes": self.bytes}


@dataclass
class JobState:
    """What the reader holds between lines: the job's events and each CI's open step."""

    restores: list[Restore] = field(default_factory=list)
    saves: list[Save] = field(default_factory=list)
    size: int = 0  # the last size printed, for the restore or save it precedes
    primary: str | None = None  # GitHub: the open actions/cache step's key input
    restore_key_hit: bool = False  # GitHub: "Cache hit for restore-key"
    restore_failed: str | None = None  # GitHub: "Failed to restore: ..." before the miss
    ref: str = ""  # GitLab: the job's ref slug, from "Checking out ... (ref is R)"
    open: Restore | None = None  # GitLab/CircleCI: the restore being read
    fallback: bool = False  # GitLab: the open restore already tried a fallback key
    failed: bool = False  # GitLab: the open restore's last key failed to extract
    reason: str | None = None  # GitLab: the last warning inside the open restore
    save: Save | None = None  # GitLab: the cache being created
    up_to_date: bool = False
    missed: str | None = None  # CircleCI: "No cache is found for key" before a Found
    resolved: list[str] = field(default_factory=list)  # Azure: key, then restore keys

    def restored(self, restore: Restore) -> Restore:
        if len(self.restores) < MAX_EVENTS:
            self.restores.append(restore)
        self.size = 0
        return restore

    def saved(self, save: Save) -> None:
        if len(self.saves) < MAX_EVENTS:
            self.saves.append(save)
        self.size = 0

    def close(self) -> None:
        """End the open GitLab or CircleCI restore: one still unresolved missed."""
        if self.open is not None and self.failed:
            self.open.result = "miss"
            self.open.reason = self.reason
            self.restored(self.open)
        if self.missed is not None:
            self.restored(Restore("circleci", stable_name(self.missed), "miss",
                                  key=self.missed))
        self.open, self.failed, self.fallback, self.reason, self.missed = \
            None, False, False, None, None


Handler = Callable[[JobState, "re.Match[str]"], None]


def _first_key(keys: str) -> str:
    return keys.split(",")[0].strip()


def _bytes(number: str, unit: str) -> int:
    return int(float(number) * _UNITS.get(unit.upper(), 1))


# --- GitHub Actions ---------------------------------------------------------------------------

def gh_step(job: JobState, m: re.Match[str]) -> None:
    """``Run actions/cache@v4``: a cache step starts; its ``key:`` input follows."""
    job.primary, job.restore_key_hit = "", False


def gh_key(job: JobState, m: re.Match[str]) -> None:
    """``key: node-Linux-3f2a...`` in the open cache step's inputs: its primary key."""
    if job.primary == "":
        job.primary = m["key"].strip()


def gh_size(job: JobState, m: re.Match[str]) -> None:
    """``Cache Size: ~48 MB (50331648 B)``: the size of the restore or save that follows."""
    job.size = int(m["bytes"])


def gh_received(job: JobState, m: re.Match[str]) -> None:
    """``Received 209620499 of 209620499 (100.0%)`` (a restore) or ``Sent 65867307 of 65867307
    (100.0%)`` (a save; actions/cache v4 prints no Cache Size then): the transfer's size when
    no Cache Size line gave it."""
    job.size = job.size or int(m["total"])


def gh_restore_failed(job: JobState, m: re.Match[str]) -> None:
    """``Warning: Failed to restore: "/usr/bin/tar" failed ...``: a cache was found but not
    restored; the miss that follows keeps this as its reason."""
    job.restore_failed = m["text"].strip()[:MAX_REASON_CHARS]


def gh_restore_key(job: JobState, m: re.Match[str]) -> None:
    """``Cache hit for restore-key: K``: the coming restore is a partial hit."""
    job.restore_key_hit = True


def gh_restored(job: JobState, m: re.Match[str]) -> None:
    """``Cache restored from key: K``: a hit, or partial when K is not the primary key."""
    key = m["key"].strip()
    primary = job.primary or ""
    partial = job.restore_key_hit or (bool(primary) and key != primary)
    job.restored(Restore("github", stable_name(primary or key), "partial" if partial else "hit",
                         job.size, key))
    job.primary, job.restore_key_hit, job.restore_failed = None, False, None


def gh_not_found(job: JobState, m: re.Match[str]) -> None:
    """``Cache not found for input keys: K, R1, R2``: a miss, named by the primary key."""
    key = _first_key(m["keys"])
    job.restored(Restore("github", stable_name(key), "miss", key=key,
                         reason=job.restore_failed))
    job.primary, job.restore_failed = None, None


def gh_setup_miss(job: JobState, m: re.Match[str]) -> None:
    """``npm cache is not found`` (setup-node/python/java), ``Cache is not found``
    (setup-go): a miss whose key the action does not print; named when the job's save shows
    it (see ``finish``)."""
    tool = (m["tool"] or "go").lower()
    prefix = _SETUP_PREFIX.get(tool, "setup-go-" if tool == "go" else f"setup-{tool}-")
    job.restored(Restore("github", f"{prefix}{'' if tool == 'go' else tool}".rstrip("-"),
                         "miss", key=f"\0{prefix}\0{tool}"))


def gh_saved(job: JobState, m: re.Match[str]) -> None:
    """``Cache saved with key: K``: a save."""
    key = m["key"].strip()
    job.saved(Save("github", stable_name(key), job.size, key))


# --- GitLab CI ---------------------------------------------------------------------------------

def gl_ref(job: JobState, m: re.Match[str]) -> None:
    """``Checking out 3c530002 as detached HEAD (ref is main)...`` (or ``as master...``): the
    ref whose slug a cache key may be, trailing digits and all."""
    job.ref = ref_slug(m["ref"] or m["branch"] or "")


def gl_checking(job: JobState, m: re.Match[str]) -> None:
    """``Checking cache for K...``: a restore opens; a ``(fallback)`` key continues the one
    that just failed."""
    key = m["key"]
    if m["fallback"] and job.open is not None and job.failed:
        job.fallback, job.failed = True, False
        return
    job.close()
    job.open = Restore("gitlab", stable_name(key, "gitlab", job.ref), "miss", key=key)


def gl_extracted(job: JobState, m: re.Match[str]) -> None:
    """``Successfully extracted cache``: a hit (partial on a fallback key)."""
    if job.open is not None:
        job.open.result = "partial" if job.fallback else "hit"
        job.restored(job.open)
        job.open, job.failed, job.fallback, job.reason = None, False, False, None


def gl_failed(job: JobState, m: re.Match[str]) -> None:
    """``Failed to extract cache``: a miss, unless a fallback key follows."""
    if job.open is not None:
        job.failed = True


def gl_warning(job: JobState, m: re.Match[str]) -> None:
    """``WARNING: ...`` / ``ERROR: ...`` / ``FATAL: ...`` inside a restore: why it may fail
    (kept)."""
    if job.open is not None and not job.failed:
        job.reason = m["text"].strip()[:MAX_REASON_CHARS]


def gl_creating(job: JobState, m: re.Match[str]) -> None:
    """``Creating cache K...``: a save starts."""
    job.close()
    key = m["key"]
    job.save, job.up_to_date = Save("gitlab", stable_name(key, "gitlab", job.ref), key=key), False


def gl_up_to_date(job: JobState, m: re.Match[str]) -> None:
    """``Archive is up to date!``: nothing to upload; the save that follows saves nothing."""
    job.up_to_date = True


def gl_created(job: JobState, m: re.Match[str]) -> None:
    """``Created cache``: the save happened (unless the archive was up to date)."""
    if job.save is not None and not job.up_to_date:
        job.saved(job.save)
    job.save = None


def gl_create_failed(job: JobState, m: re.Match[str]) -> None:
    """``Failed to create cache``: nothing saved."""
    job.save = None


# --- CircleCI ------------------------------------------------------------------------------------

def cc_no_cache(job: JobState, m: re.Match[str]) -> None:
    """``No cache is found for key: K``: a miss, or the first try of a partial hit."""
    job.close()
    job.missed = _first_key(m["keys"])


def cc_found(job: JobState, m: re.Match[str]) -> None:
    """``Found a cache from build 12 at K``: a hit (partial after a miss on another key)."""
    partial = job.missed is not None
    job.missed = None
    job.close()
    key = m["key"].strip()
    job.open = job.restored(Restore("circleci", stable_name(key),
                                    "partial" if partial else "hit", key=key))


def cc_size(job: JobState, m: re.Match[str]) -> None:
    """``Size: 94 MiB`` after a Found line: the restored bytes."""
    if job.open is not None and job.open.ci == "circleci":
        job.open.bytes = _bytes(m["number"], m["unit"])


def cc_untar_failed(job: JobState, m: re.Match[str]) -> None:
    """``Error untarring cache: exit status 2``: found but not restored: a miss."""
    if job.open is not None and job.open.ci == "circleci":
        job.open.result, job.open.bytes = "miss", 0
        job.open.reason = m.group(0)[:MAX_REASON_CHARS]


def cc_stored(job: JobState, m: re.Match[str]) -> None:
    """``Stored Cache to K``: a save."""
    job.close()
    key = m["key"].strip()
    job.saved(Save("circleci", stable_name(key), key=key))


def cc_uploaded(job: JobState, m: re.Match[str]) -> None:
    """``Total size uploaded: 508 MiB`` after a Stored Cache line: the saved bytes."""
    if job.saves and job.saves[-1].ci == "circleci":
        job.saves[-1].bytes = _bytes(m["number"], m["unit"])


# --- Azure Pipelines -------------------------------------------------------------------------

def az_resolving(job: JobState, m: re.Match[str]) -> None:
    """``Resolving key:``: a Cache@2 task starts resolving its key (then restore keys)."""
    if m.group(0).startswith("Resolving key"):
        job.resolved = []


def az_resolved(job: JobState, m: re.Match[str]) -> None:
    """``Resolved to: npm|"Linux"|D8R9...``: the key, then each restore key."""
    job.resolved.append(m["key"].strip())


def az_found(job: JobState, m: re.Match[str]) -> None:
    """``Entry found at fingerprint: `F```: a hit on the key, partial on a restore key."""
    fingerprint = m["key"].strip()
    partial = bool(job.resolved) and fingerprint != job.resolved[0]
    key = job.resolved[0] if job.resolved else fingerprint
    job.restored(Restore("azure", stable_name(key), "partial" if partial else "hit",
                         key=fingerprint))


def az_saved(job: JobState, m: re.Match[str]) -> None:
    """``Saved item.``: the post-job Cache@2 step saved the key it resolved."""
    key = job.resolved[0] if job.resolved else "default"
    job.saved(Save("azure", stable_name(key), key=key))


@dataclass(frozen=True)
class Rule:
    """One kind of line: the pattern its message matches from its start, and what it does."""

    pattern: str
    handler: Handler


RULES: tuple[Rule, ...] = (
    Rule(r"Run actions/cache(?:/restore)?@", gh_step),
    Rule(r"key: (?P<key>\S.*)$", gh_key),
    Rule(r"Cache Size: ~?[\d.]+ \w+ \((?P<bytes>\d+) B\)", gh_size),
    Rule(r"(?:Received|Sent) (?P<done>\d+) of (?P<total>\d+) \(", gh_received),
    Rule(r"(?:Warning: )?(?P<text>Failed to restore: .+)$", gh_restore_failed),
    Rule(r"Cache hit for restore-key: ", gh_restore_key),
    Rule(r"Cache restored from key: (?P<key>\S.*)$", gh_restored),
    Rule(r"Cache not found for input keys: (?P<keys>\S.*)$", gh_not_found),
    Rule(r"(?:(?P<tool>[a-z]+) cache|Cache) is not found$", gh_setup_miss),
    Rule(r"Cache saved with key: (?P<key>\S.*)$", gh_saved),
    Rule(r"Checking cache for (?P<key>\S+?)(?P<fallback> \(fallback\))?\.\.\.$", gl_checking),
    Rule(r"Successfully extracted cache$", gl_extracted),
    Rule(r"Failed to extract cache\b", gl_failed),
    Rule(r"Checking out [0-9a-f]+ as (?:detached HEAD \(ref is (?P<ref>[^)]+)\)|(?P<branch>\S+?))"
         r"\.\.\.$", gl_ref),
    Rule(r"(?:WARNING|ERROR|FATAL): (?P<text>.+)$", gl_warning),
    Rule(r"Creating cache (?P<key>\S+?)\.\.\.$", gl_creating),
    Rule(r"Archive is up to date!", gl_up_to_date),
    Rule(r"Created cache$", gl_created),
    Rule(r"Failed to create cache\b", gl_create_failed),
    Rule(r"No cache is found for keys?: (?P<keys>\S.*)$", cc_no_cache),
    Rule(r"Found a cache from build \d+ at (?P<key>\S.*)$", cc_found),
    Rule(r"Size: (?P<number>[\d.]+) ?(?P<unit>[KMGT]i?B|B)$", cc_size),
    Rule(r"Error untarring cache: .*$", cc_untar_failed),
    Rule(r"Stored Cache to (?P<key>\S.*)$", cc_stored),
    Rule(r"Total size uploaded: (?P<number>[\d.]+) ?(?P<unit>[KMGT]i?B|B)$", cc_uploaded),
    Rule(r"Resolving (?:restore )?key:", az_resolving),
    Rule(r"Resolved to: (?P<key>\S.*)$", az_resolved),
    Rule(r"Entry found at fingerprint: `(?P<key>[^`]+)`", az_found),
    Rule(r"Saved item\.$", az_saved),
)
_COMPILED = [(re.compile(rule.pattern), rule.handler) for rule in RULES]
# What a rule's message starts with: a line starting otherwise is skipped at once.
_LEADS = ("Run actions/cache", "key: ", "Cache ", "Received ", "Sent ", "Warning: Failed",
          "Checking cache", "Checking out", "Successfully", "Failed to ", "WARNING: ", "ERROR: ",
          "FATAL: ", "Creating cache", "Archive is", "Created cache", "No cache", "Found a cache",
          "Size: ", "Error untarring", "Stored Cache", "Total size uploaded", "Resolv",
          "Entry found", "Saved item", *(f"{tool} cache" for tool in _SETUP_PREFIX))


def message(line: str) -> str:
    """A line's message: no colour codes, CI timestamp, job/step columns or stream tag."""
    text = _ANSI.sub("", line) if "\x1b" in line or "[" in line else line
    return text[_PREFIX.match(text).end():].rstrip()  # type: ignore[union-attr]


class JobLogReader:
    """Feed a job log's lines; ``finish()`` gives its restores and saves."""

    def __init__(self) -> None:
        self._job = JobState()

    def feed(self, line: bytes | str) -> None:
        """Read one line (``\\r`` separated parts each count). Never raises on bad input."""
        if isinstance(line, bytes):
            line = line[:MAX_LINE_CHARS].decode("utf-8", "replace")
        for part in line[:MAX_LINE_CHARS].split("\r"):
            text = message(part)
            if not text.startswith(_LEADS):
                continue
            for pattern, handler in _COMPILED:
                match = pattern.match(text)
                if match is not None:
                    handler(self._job, match)
                    break

    def finish(self) -> tuple[list[Restore], list[Save]]:
        """The job's restores and saves, with what only the whole job tells applied: a
        setup-* miss named by the save that followed it, and a CircleCI hit that was partial
        because the job then stored a new key under its name."""
        job = self._job
        job.close()
        if job.save is not None and job.save.ci == "gitlab":
            job.save = None  # "Creating cache" without "Created cache": not saved
        stored = {(s.ci, s.cache): s.key for s in job.saves}
        for restore in job.restores:
            if restore.key.startswith("\0"):
                _, prefix, tool = restore.key.split("\0")
                restore.cache = next((s.cache for s in job.saves if s.cache.startswith(prefix)
                                      and s.cache.endswith(tool)), restore.cache)
                restore.key = ""
            elif restore.ci == "circleci" and restore.result == "hit":
                saved = stored.get((restore.ci, restore.cache))
                if saved is not None and saved != restore.key:
                    restore.result = "partial"
        return job.restores, job.saves
