"""``source-before-deps``, part one: which steps after the source copy could run before it.

A dependency install placed after ``COPY . .`` reruns on every source change. Moving it up is
only safe when it and everything moved with it (WORKDIR, ENV, small copies, cheap commands)
never read the project's files, and when no build argument that changes per build or commit
comes along (it would bust the install it was moved above).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ..copies import ROOT_SOURCES, broad_copy, clean_source
from ..dockerfile import (
    Dockerfile,
    Instruction,
    Stage,
    arg_pairs,
    env_pairs,
    instruction_text,
    references,
)
from ..installers import HOISTABLE_KINDS, INSTALL_KINDS, Step
from ..runs import RunInfo, run_info
from ..shell import Command
from ..stages import stage_chain
from ..volatility import volatility

__all__ = ["Hoist", "hoist_plan", "mounts_context"]


# Cheap commands that may read the files they are given: hoisting them above a source copy
# is only safe when every path they name is absolute (so it cannot come from the context).
_READERS = frozenset({
    "chmod", "chown", "chgrp", "cp", "mv", "rm", "cat", "sed", "test", "[", "[[", "source",
    ".", "install", "tee", "ls", "grep", "awk",
})


@dataclass
class Hoist:
    """Instructions (stage indexes) to move above the source copy, and one RUN to split."""

    moved: list[int]
    installs: list[int]
    split: tuple[int, int] | None = None

    def runs(self) -> list[int]:
        """The RUNs that install ahead of the sources once the plan is applied, in order."""
        return self.installs + ([self.split[0]] if self.split else [])


def _hoistable_command(command: Command, step: Step) -> bool:
    """Whether a command could run before the sources are copied without changing meaning."""
    if step.kind in HOISTABLE_KINDS:
        return True
    if step.kind != "cheap" or not command.words:
        return False
    if posixpath.basename(command.words[0]) not in _READERS:
        return True
    paths = [w for w in command.words[1:] if not w.startswith(("-", "+"))]
    return all(p.startswith("/") for p in paths)


def _install_words(info: RunInfo, count: int | None = None) -> set[tuple[str, ...]]:
    """The install commands of a RUN (or of its first ``count`` commands), options left out."""
    pairs = list(zip(info.commands, info.steps, strict=True))[:count]
    return {(step.manager or "", *(w for w in command.words[1:] if not w.startswith("-")))
            for command, step in pairs if step.kind in INSTALL_KINDS}


def _installed_before(df: Dockerfile, stage: Stage, copy_at: int) -> set[tuple[str, ...]]:
    """Install commands already run before the source copy (in the stage or its ancestors).

    Running one of them again after the copy is cheap (everything is already there), so it is
    not a dependency step out of place: that is the "split" fix's own result.
    """
    done: set[tuple[str, ...]] = set()
    for ancestor in stage_chain(df, stage)[:-1]:
        for ins in ancestor.instructions:
            if ins.keyword == "RUN":
                done |= _install_words(run_info(ins))
    for ins in stage.instructions[:copy_at]:
        if ins.keyword == "RUN":
            done |= _install_words(run_info(ins))
    return done


def mounts_context(ins: Instruction) -> bool:
    """A ``--mount=type=bind`` of the whole build context: the step then depends on all of it."""
    return any(m.get("type") == "bind" and "from" not in m
               and clean_source(m.get("source", ".")) in ROOT_SOURCES for m in ins.mounts())


def _hoistable_run(info: RunInfo) -> bool:
    """A RUN that only installs or prepares, never touching the project's files."""
    return info.readable and bool(info.commands) and not mounts_context(info.instruction) and all(
        _hoistable_command(c, s) for c, s in zip(info.commands, info.steps, strict=True)
    )


def _dependency_prefix(info: RunInfo) -> int:
    """How many leading ``&&``-joined commands of a RUN install dependencies only (0 if none)."""
    ins = info.instruction
    if not info.readable or ins.heredocs or ins.exec_form is not None or mounts_context(ins):
        return 0
    count = 0
    for command, step in zip(info.commands, info.steps, strict=True):
        if not _hoistable_command(command, step) or command.separator != "&&":
            break
        count += 1
    installs = [s for s in info.steps[:count] if s.kind in ("dep", "named", "os-install")]
    return count if installs else 0


_CONTEXT_KEYWORDS = frozenset({"WORKDIR", "ENV", "ARG", "USER", "SHELL"})
_METADATA_KEYWORDS = frozenset({"LABEL", "EXPOSE", "CMD", "ENTRYPOINT", "VOLUME", "HEALTHCHECK",
                                "STOPSIGNAL", "MAINTAINER", "ONBUILD"})


def hoist_plan(df: Dockerfile, stage: Stage, copy_at: int) -> Hoist | None:
    """Which instructions after the source copy at ``copy_at`` can move above it.

    Install commands that already ran before the copy do not make a RUN worth moving:
    repeating them after it costs little.
    """
    insts = stage.instructions
    done = _installed_before(df, stage, copy_at)
    plan = Hoist([], [])
    held: set[str] = set()  # volatile ARG/ENV names left in place: installs must not need them
    for index in range(copy_at + 1, len(insts)):
        ins = insts[index]
        if _volatile_binding(ins, held):
            held |= {name for name, _ in arg_pairs(ins) + env_pairs(ins)}
            continue
        if held and ins.keyword not in _METADATA_KEYWORDS and references(
            instruction_text(ins), held
        ):
            break
        if ins.keyword == "RUN":
            info = run_info(ins)
            if _hoistable_run(info):
                plan.moved.append(index)
                if _install_words(info) - done:
                    plan.installs.append(index)
                continue
            prefix = _dependency_prefix(info)
            if prefix and _install_words(info, prefix) - done:
                plan.split = (index, prefix)
            break
        if ins.keyword in _CONTEXT_KEYWORDS or (
            ins.keyword in ("COPY", "ADD") and not broad_copy(ins)
        ):
            plan.moved.append(index)
        elif ins.keyword not in _METADATA_KEYWORDS:
            break
    last = plan.split[0] if plan.split else max(plan.installs, default=-1)
    plan.moved = [i for i in plan.moved if i <= last]
    return plan if plan.installs or plan.split else None


def _volatile_binding(ins: Instruction, held: set[str]) -> bool:
    """An ARG/ENV whose value changes per build or commit: moving it up would bust installs."""
    if ins.keyword == "ARG":
        return any(volatility(name, value) for name, value in arg_pairs(ins))
    if ins.keyword == "ENV":
        return any(volatility(name, None) or (held and references(value, held))
                   for name, value in env_pairs(ins))
    return False
