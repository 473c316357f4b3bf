"""``copy-before-install``: a file copied in front of a package install that never reads it.

A copied file that changes misses the cache at its COPY and rebuilds every step after it, so
a config file, an entrypoint script or another stage's build output copied above
``apt-get install`` (or ``dnf``, ``apk add``, ``pip install flask``) reinstalls the packages
on each edit. The rule walks down from each narrow copy (a whole-context copy is
``source-before-deps``'s) over steps that cannot depend on it, and reports the copy when it
passes an install. It never passes a step that names the copied path, an unreadable script,
a ``USER``/``SHELL`` change, or a copy to the same place; and it leaves alone what installers
read by themselves: package sources, keys, CA certificates, pip/npm settings, the user and
locale databases (a copy of those must stay in front).
"""

from __future__ import annotations

import posixpath

from ..copies import broad_copy, clean_source, copy_sources
from ..dockerfile import Dockerfile, Instruction, Stage, instruction_text, names_in
from ..finding import Context, Finding
from ..fixes import unified_diff
from ..installers import CHEAP_KINDS
from ..runs import RunInfo, run_info
from ..stages import stage_chain
from .hoist_plan import mounts_context

__all__ = ["copy_before_install"]

# Where installers read their own settings: a copy there is needed before the install.
_READ_BY_INSTALLERS = (
    "/etc/apt", "/etc/yum", "/etc/dnf", "/etc/apk", "/etc/zypp", "/etc/pki", "/etc/ssl",
    "/etc/ca-certificates", "/usr/local/share/ca-certificates", "/usr/share/keyrings",
    "/etc/pip", "/root/.pip", "/root/.config/pip", "/root/.npmrc", "/etc/npmrc",
    "/usr/local/etc/npmrc", "/etc/dpkg", "/etc/debconf", "/usr/sbin/policy-rc.d",
    "/etc/passwd", "/etc/group", "/etc/shadow", "/etc/environment", "/etc/resolv.conf",
    "/etc/hosts", "/etc/nsswitch.conf", "/etc/localtime", "/etc/timezone", "/etc/locale",
    "/etc/default", "/etc/gemrc", "/root/.gemrc", "/root/.m2", "/etc/profile",
)
_INSTALLER_FILES = (
    ".repo", ".list", ".sources", ".gpg", ".asc", ".pem", ".crt", ".cer", ".key", "pip.conf",
    ".npmrc", ".yarnrc", ".yarnrc.yml", ".condarc", ".gemrc", "sources.list", "apt.conf",
    "preferences", "dnf.conf", "yum.conf", "repositories", ".netrc", "pydistutils.cfg",
    "settings.xml", ".pypirc",
)
_PASSABLE = frozenset({"ENV", "ARG", "LABEL", "EXPOSE", "CMD", "ENTRYPOINT", "VOLUME",
                       "HEALTHCHECK", "STOPSIGNAL", "MAINTAINER", "WORKDIR", "COPY", "ADD"})
_INSTALLS = frozenset({"os-install", "named"})
_HARMLESS = _INSTALLS | CHEAP_KINDS | {"os-update", "fetch"}


def _destination(ins: Instruction) -> str:
    """The copy's destination as written, without a trailing slash."""
    words = ins.words()
    return words[-1].rstrip("/") if len(words) >= 2 else ""


def _read_by_installers(ins: Instruction) -> bool:
    """A copy of something package managers read themselves (sources, keys, settings)."""
    dest = _destination(ins)
    names = [posixpath.basename(clean_source(s)) for s in copy_sources(ins)]
    return dest.startswith(_READ_BY_INSTALLERS) or any(
        name.endswith(_INSTALLER_FILES) or "*" in name for name in [*names, dest])


def _built_stages(df: Dockerfile) -> set[str]:
    """Names (and indexes) of the stages that build files, not just name an image."""
    built = set()
    for stage in df.stages:
        if any(i.keyword in ("RUN", "COPY", "ADD") for s in stage_chain(df, stage)
               for i in s.instructions):
            built |= {str(stage.index)} | ({stage.name} if stage.name else set())
    return built


def _candidate(df: Dockerfile, ins: Instruction) -> bool:
    """A narrow COPY of the context, or of a stage of this file that builds something."""
    if ins.keyword != "COPY" or broad_copy(ins) or ins.heredocs or len(ins.words()) < 2:
        return False
    source = ins.flag("from")
    if source is not None and source.lower() not in _built_stages(df):
        return False  # an image's files change when its tag moves: latest-tag's concern
    return not _read_by_installers(ins) and not _overlay(ins) and "$" not in _destination(ins)


def _overlay(ins: Instruction) -> bool:
    """A folder copied onto ``/``, ``/etc``, ``/usr``: its files are unknown here and may be
    what the installs read (repositories, keys), so the copy is left in front."""
    dest = _destination(ins)
    shallow = dest.count("/") <= 1 and (dest.startswith("/") or not dest)
    return shallow and any("." not in posixpath.basename(clean_source(s)) or s.endswith("/")
                           for s in copy_sources(ins))


def _marks(ins: Instruction) -> list[str]:
    """What a step names when it uses the copy: its destination and the copied names."""
    marks = [_destination(ins)] if _destination(ins) not in ("", ".", "./") else []
    marks += [posixpath.basename(clean_source(s)) for s in copy_sources(ins)]
    return [m for m in marks if len(m) >= 3]


def _uses(info: RunInfo, marks: list[str]) -> bool:
    text = instruction_text(info.instruction)
    return any(mark in text for mark in marks)


def _verdict(info: RunInfo, marks: list[str]) -> str:
    """``install`` (does not read the copy), ``pass``, ``follow`` (a cheap step on the copied
    file, such as ``chmod +x``, that moves down with it) or ``stop``."""
    if not info.readable or mounts_context(info.instruction):
        return "stop"
    if _uses(info, marks):
        return "follow" if info.kinds() <= CHEAP_KINDS else "stop"
    if not info.kinds() <= _HARMLESS:
        return "stop"
    return "install" if info.kinds() & _INSTALLS else "pass"


def _passed(stage: Stage, index: int) -> tuple[list[int], list[int]]:
    """The installs the copy at ``index`` sits in front of needlessly, and the cheap steps
    on the copied file that move down with it (both as stage indexes)."""
    insts = stage.instructions
    copy = insts[index]
    marks = _marks(copy)
    names = names_in(instruction_text(copy))
    absolute = _destination(copy).startswith("/")
    installs: list[int] = []
    followers: list[int] = []
    for j in range(index + 1, len(insts)):
        ins = insts[j]
        if ins.keyword == "RUN":
            verdict = _verdict(run_info(ins), marks)
            if verdict == "stop":
                break
            if verdict == "install":
                installs.append(j)
            elif verdict == "follow":
                followers.append(j)
            continue
        if ins.keyword not in _PASSABLE or (ins.keyword == "WORKDIR" and not absolute):
            break
        if ins.keyword in ("ENV", "ARG") and names & names_in(instruction_text(ins)):
            break
        if ins.keyword in ("COPY", "ADD") and (
                broad_copy(ins) or _destination(ins) == _destination(copy)):
            break
    return installs, [j for j in followers if installs and j < installs[-1]]


def copy_before_install(ctx: Context) -> list[Finding]:
    """Narrow copies that sit in front of installs which never read them."""
    df = ctx.dockerfile
    findings = []
    for stage in df.stages:
        for index, ins in enumerate(stage.instructions):
            if not _candidate(df, ins):
                continue
            installs, followers = _passed(stage, index)
            if installs:
                findings.append(_finding(ctx, stage, [index, *followers], installs))
    return findings


def _what(ins: Instruction) -> str:
    source = ins.flag("from")
    if source is not None:
        return f"what stage `{source}` builds"
    return ", ".join(clean_source(s) for s in copy_sources(ins))


def _finding(ctx: Context, stage: Stage, moved: list[int], installs: list[int]) -> Finding:
    """Name the copy and the install it busts; move the copy (and the cheap steps on the
    copied file) below the last install."""
    df = ctx.dockerfile
    ins = stage.instructions[moved[0]]
    first = run_info(stage.instructions[installs[0]])
    label = next(" ".join(c.words) for c, s in zip(first.commands, first.steps, strict=True)
                 if s.kind in _INSTALLS)
    label = label if len(label) <= 48 else label[:45] + "..."
    message = (
        f"`{ins.display()}` (line {ins.start_line}) comes before `{label}` (line "
        f"{first.instruction.start_line}), which does not read it: every change to "
        f"{_what(ins)} reinstalls the packages; copy it after the install")
    anchor = stage.instructions[installs[-1]].end_line
    lines = {n for j in moved for n in range(stage.instructions[j].start_line,
                                              stage.instructions[j].end_line + 1)}
    new = [line for n, line in enumerate(df.lines[:anchor], start=1) if n not in lines]
    new += [df.lines[n - 1] for n in sorted(lines)] + df.lines[anchor:]
    fix = unified_diff(df.lines, new, ctx.path)
    return Finding("copy-before-install", ins.start_line, message, fix, ins.display())
