"""``source-before-deps``: dependency installs that run after the sources were copied.

The plan (what can move) comes from :mod:`.hoist_plan`; this module places the manifests the
moved installs need with their own COPY lines, edits the file and words the finding. When a
manifest cannot be placed the install may need more of the sources than we can see, and the
rule stays silent.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterable

from ..copies import broad_copy, clean_source, copy_sources
from ..dockerfile import Dockerfile, Instruction, Stage
from ..finding import Context, Finding
from ..fixes import unified_diff
from ..installers import INSTALL_KINDS
from ..runs import RunInfo, run_info
from ..stages import StageState, absolute, same_root, stage_chain, stage_state, workdir
from .hoist_plan import Hoist, hoist_plan

__all__ = ["source_before_deps"]

# Stands in for the COPY lines of a RUN that is reported without a fix.
_NO_FIX = "# no fix"


def _provided(df: Dockerfile, stage: Stage, before: int, extra: Iterable[Instruction]) -> list[str]:
    """Basenames of files copied into the stage before index ``before`` (and by ``extra``)."""
    copies: list[Instruction] = []
    for ancestor in stage_chain(df, stage)[:-1]:
        copies += ancestor.instructions
    copies += stage.instructions[:before]
    copies += list(extra)
    names = []
    for ins in copies:
        if ins.keyword in ("COPY", "ADD"):
            names += [posixpath.basename(clean_source(s)) for s in copy_sources(ins)]
    return names


def _is_provided(manifest: str, provided: list[str], ins: Instruction) -> bool:
    """Whether a manifest reaches the RUN by an earlier copy or by a bind mount of its own."""
    name = posixpath.basename(manifest.rstrip("/"))
    mounted = [posixpath.basename(clean_source(m.get("source", ""))) for m in ins.mounts()
               if m.get("type") == "bind" and m.get("source")]
    return any(fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(pattern, name)
               for pattern in provided + mounted if pattern and pattern != ".")


def _manifest_copies(
    ctx: Context, stage: Stage, state: StageState, plan: Hoist, copy_at: int
) -> dict[int, list[str]] | None:
    """COPY lines to insert before each hoisted RUN for manifests the source copy provided.

    Returns None when a manifest cannot be placed: then the install may need more of the
    sources than we can see, and the rule stays silent. A RUN whose step cannot run from its
    manifests alone maps to ``[_NO_FIX]``: reported, but without a fix that would not build.
    """
    insts = stage.instructions
    broad = insts[copy_at]
    sources = copy_sources(broad)
    words = broad.words()
    result: dict[int, list[str]] = {}
    for index in plan.runs():
        hoisted = [insts[i] for i in plan.moved if i < index]
        provided = _provided(ctx.dockerfile, stage, copy_at, hoisted)
        missing: list[tuple[str, bool]] = []
        for step in run_info(insts[index]).steps:
            if step.kind != "dep":
                continue
            if not step.manifests:
                return None
            missing += [(m, False) for m in step.manifests
                        if not _is_provided(m, provided, insts[index])]
            missing += [(m, True) for m in step.optional
                        if not _is_provided(m, provided, insts[index])]
        if not any(not optional for _, optional in missing):
            continue
        if not all(step.standalone for step in run_info(insts[index]).steps):
            result[index] = [_NO_FIX]
            continue
        if len(sources) != 1 or len(words) != 2:
            return None
        lines = _copy_lines(broad, sources[0], words[-1], state, copy_at, index, missing)
        if lines is None:
            return None
        result[index] = lines
    return result


def _copy_lines(
    broad: Instruction, source: str, dest: str, state: StageState, copy_at: int, run_at: int,
    manifests: list[tuple[str, bool]],
) -> list[str] | None:
    """``COPY`` lines that put each manifest where the source copy would have put it."""
    cwd_copy, cwd_run = state.cwd_before[copy_at], state.cwd_before[run_at]
    if "{?}" in cwd_copy or "{?}" in cwd_run or "$" in dest or "$" in source:
        return None
    if any(ch in manifest for manifest, _ in manifests for ch in "*?["):
        return None
    dest_root = absolute(cwd_copy, dest)
    source_root = clean_source(source)
    groups: dict[str, list[str]] = {}
    for manifest, optional in manifests:
        directory = manifest.endswith("/")
        inside = absolute(cwd_run, manifest.rstrip("/"))
        relative = posixpath.relpath(inside, dest_root) if same_root(inside, dest_root) else ".."
        if relative.startswith(".."):
            return None
        context_path = relative if source_root in (".", "*", "./*") else posixpath.join(
            source_root, relative)
        target_dir = posixpath.dirname(manifest.rstrip("/"))
        target = (manifest.rstrip("/") + "/") if directory else (
            (target_dir + "/") if target_dir else "./")
        groups.setdefault(target, []).append(context_path + ("*" if optional else ""))
    flags = " ".join(f"--{f.name}={f.value}" for f in broad.flags
                     if f.name in ("chown", "chmod") and f.value)
    if broad.has_flag("link"):
        flags = (flags + " --link").strip()
    prefix = "COPY " + (flags + " " if flags else "")
    return [prefix + " ".join([*files, target]) for target, files in groups.items()]


def _rewritten_copy(
    df: Dockerfile, broad: Instruction, state: StageState, copy_at: int, new_cwd: str
) -> str | None:
    """The source copy's line with its relative destination fixed for a hoisted WORKDIR."""
    words = broad.words()
    first = df.lines[broad.start_line - 1]
    if broad.end_line != broad.start_line or broad.exec_form is not None or len(words) < 2:
        return None
    dest = words[-1]
    if dest.startswith("/"):
        return first
    target = absolute(state.cwd_before[copy_at], dest)
    if "{?}" in target + new_cwd or not same_root(target, new_cwd):
        return None
    relative = posixpath.relpath(target, new_cwd)
    if relative.startswith(".."):
        return None
    new_dest = "./" if relative == "." else relative + ("/" if dest.endswith("/") else "")
    if not first.rstrip().endswith(dest):
        return None
    return first.rstrip()[: -len(dest)] + new_dest


def _hoist_edit(
    ctx: Context, stage: Stage, plan: Hoist, copy_at: int, state: StageState,
    inserts: dict[int, list[str]],
) -> list[str] | None:
    """The file's lines with the plan applied (moves, new COPY lines, a split RUN)."""
    df = ctx.dockerfile
    insts = stage.instructions
    broad = insts[copy_at]
    block: list[str] = []
    removed: set[int] = set()
    new_cwd = state.cwd_before[copy_at]
    for index in plan.moved:
        ins = insts[index]
        start = _attached_comments(df, ins, broad.end_line)
        block += inserts.get(index, [])
        block += df.lines[start - 1: ins.end_line]
        removed.update(range(start, ins.end_line + 1))
        if ins.keyword == "WORKDIR":
            new_cwd = workdir(new_cwd, ins, state.env_before[index])
    if plan.split:
        index, count = plan.split
        info = run_info(insts[index])
        script = insts[index].args[: info.commands[count - 1].end].strip()
        flags = insts[index].rest[: len(insts[index].rest) - len(insts[index].args)].strip()
        block += inserts.get(index, [])
        block.append("RUN " + (flags + " " if flags else "") + script)
    copy_line = df.lines[broad.start_line - 1]
    if new_cwd != state.cwd_before[copy_at]:
        copy_line = _rewritten_copy(df, broad, state, copy_at, new_cwd)
        if copy_line is None:
            return None
    new: list[str] = []
    for number, line in enumerate(df.lines, start=1):
        if number == broad.start_line:
            new += block
            new.append(copy_line)
            continue
        if number not in removed:
            new.append(line)
    return new


def _attached_comments(df: Dockerfile, ins: Instruction, floor: int) -> int:
    """First line of the comment block right above ``ins`` (not above line ``floor``)."""
    line = ins.start_line
    while line - 1 > floor and df.lines[line - 2].lstrip().startswith("#"):
        line -= 1
    return line


def _install_label(info: RunInfo) -> str:
    """The install command of a RUN, shortened for a message (``npm ci``, ``apt-get install``)."""
    for command, step in zip(info.commands, info.steps, strict=True):
        if step.kind in INSTALL_KINDS:
            label = " ".join(command.words[:4])
            return label if len(label) <= 48 else label[:45] + "..."
    return info.instruction.display()[:40]


def source_before_deps(ctx: Context) -> list[Finding]:
    """Dependency installs that run after the sources were copied, in the same stage."""
    findings = []
    for stage in ctx.dockerfile.stages:
        finding = _source_before_deps_in(ctx, stage)
        if finding is not None:
            findings.append(finding)
    return findings


def _source_before_deps_in(ctx: Context, stage: Stage) -> Finding | None:
    """One stage: find the first source copy and what could move above it."""
    insts = stage.instructions
    copy_at = next((i for i, ins in enumerate(insts) if broad_copy(ins)), None)
    if copy_at is None:
        return None
    plan = hoist_plan(ctx.dockerfile, stage, copy_at)
    if plan is None:
        return None
    state = stage_state(ctx.dockerfile, stage)
    inserts = _manifest_copies(ctx, stage, state, plan, copy_at)
    if inserts is None:
        return None
    fixable = not any(_NO_FIX in lines for lines in inserts.values())
    new_lines = _hoist_edit(ctx, stage, plan, copy_at, state, inserts) if fixable else None
    first = (plan.installs or [plan.split[0] if plan.split else copy_at])[0]
    ins, broad = insts[first], insts[copy_at]
    steps = [_install_label(run_info(insts[i])) for i in plan.runs()]
    manifests = sorted({word for lines in inserts.values() for line in lines
                        if line != _NO_FIX for word in line.split()[1:-1]
                        if not word.startswith("--")})
    how = (f"copy {', '.join(manifests)} first, " if manifests else "") + \
        "install, then copy the sources"
    message = (
        f"{'; '.join(f'`{s}`' for s in steps)} runs after `{broad.display()}` (line "
        f"{broad.start_line}), so every source change reinstalls dependencies that did not "
        f"change; {how}"
    )
    fix = unified_diff(ctx.dockerfile.lines, new_lines, ctx.path) if new_lines else None
    return Finding("source-before-deps", ins.start_line, message, fix, ins.display())
