"""``apt-update-separate``: ``apt-get update`` in a RUN of its own, the install in a later one.

The RUN of its own may also upgrade (``apt-get update && apt-get upgrade -y``): it still
installs nothing new, so the later install reads the index it cached.

apt's index (``/var/lib/apt/lists``) is the cache that ``apt-get update`` leaves behind; an
update in its own RUN is reported once, here, and its fix merges it into the install and
removes the lists (cleaning in a later layer would not shrink the image), so
``package-cache-kept`` does not report the same lists again.
"""

from __future__ import annotations

import re

from ..finding import Context, Finding
from ..fixes import append_command, unified_diff
from ..runs import RunInfo, run_info

__all__ = ["apt_steps", "apt_update_separate", "lone_updates"]


def apt_steps(info: RunInfo) -> set[str]:
    """Which apt verbs a RUN uses (update, install)."""
    kinds = set()
    for step in info.steps:
        if step.manager == "apt" and step.kind in ("os-update", "os-install"):
            kinds.add(step.kind)
    return kinds


_UPGRADES = frozenset({"upgrade", "dist-upgrade", "full-upgrade"})


def _updates_only(info: RunInfo) -> bool:
    """A RUN whose apt commands refresh the index, and at most upgrade what is installed.

    ``apt-get update && apt-get upgrade -y`` installs nothing new, so a later RUN that
    installs packages reads the index this layer cached, exactly as after a lone update.
    """
    if "os-update" not in apt_steps(info):
        return False
    return all(step.kind != "os-install" or
               bool(_UPGRADES.intersection(w for w in command.words if not w.startswith("-")))
               for command, step in zip(info.commands, info.steps, strict=True)
               if step.manager == "apt")


def _apt_lists_mounted(info: RunInfo) -> bool:
    """apt's lists live in a cache mount, so no layer keeps (or goes stale with) them."""
    return any(t.rstrip("/") in ("/var/lib/apt", "/var/lib/apt/lists")
               for t in info.cache_targets())


def lone_updates(ctx: Context) -> list[tuple[RunInfo, list[RunInfo]]]:
    """Each RUN that only updates (and upgrades), with the later RUNs that install after it.

    ``package-cache-kept`` asks too: the lists such a RUN keeps are this rule's finding.
    """
    found = []
    for stage in ctx.dockerfile.stages:
        infos = [run_info(i) for i in stage.instructions if i.keyword == "RUN"]
        for position, info in enumerate(infos):
            if not _updates_only(info) or _apt_lists_mounted(info):
                continue
            later = []
            for other in infos[position + 1:]:
                if "os-update" in apt_steps(other):
                    break
                if apt_steps(other) == {"os-install"}:
                    later.append(other)
            if later:
                found.append((info, later))
    return found


def apt_update_separate(ctx: Context) -> list[Finding]:
    """``apt-get update`` alone in a RUN, with the install in a later RUN of the stage."""
    findings = []
    for info, later in lone_updates(ctx):
        ins = info.instruction
        alone = "`apt-get update`" if apt_steps(info) == {"os-update"} else \
            "`apt-get update` (with the upgrade)"
        message = (
            f"{alone} runs in its own RUN (line {ins.start_line}) and the install "
            f"in another (line {later[0].instruction.start_line}): the cached index layer "
            f"goes stale while the install layer changes, and the index stays in the image; "
            f"update, install and remove /var/lib/apt/lists/* in one RUN"
        )
        fix = _merge_apt(ctx, info, later)
        findings.append(Finding("apt-update-separate", ins.start_line, message, fix,
                                ins.display()))
    return findings


def _merge_apt(ctx: Context, update: RunInfo, later: list[RunInfo]) -> str | None:
    """Fold a lone ``apt-get update`` into the single RUN that installs after it."""
    df = ctx.dockerfile
    ins = update.instruction
    if len(later) != 1 or any(step.manager != "apt" for step in update.steps) or \
            ins.heredocs or ins.exec_form or ins.end_line != ins.start_line:
        return None
    target = later[0].instruction
    if target.heredocs or target.exec_form is not None:
        return None
    first = df.lines[target.start_line - 1]
    match = re.match(r"^(\s*RUN\s+(?:--\S+\s+)*)(\S.*)$", first, re.I)
    if not match or match.group(2).startswith(df.escape):
        return None
    update_text = ins.args.strip()
    lines = list(df.lines)
    lines[target.start_line - 1] = f"{match.group(1)}{update_text} && {match.group(2)}"
    appended = append_command(lines, df.escape, target, "rm -rf /var/lib/apt/lists/*")
    if appended is None:
        return None
    del appended[ins.start_line - 1]
    return unified_diff(df.lines, appended, ctx.path)
