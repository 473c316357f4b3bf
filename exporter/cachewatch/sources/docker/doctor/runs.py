"""A RUN instruction read once into its commands and what each of them does.

Several rules ask the same questions of the same RUN (does it install? does it clean? which
cache mounts does it have?), so the script is split and classified once and memoised.
"""

from __future__ import annotations

import functools
import posixpath
from dataclasses import dataclass

from .dockerfile import Instruction, run_commands
from .installers import Step, classify
from .shell import Command

__all__ = ["RunInfo", "run_info"]


@dataclass(frozen=True)
class RunInfo:
    """A RUN's commands, what each does, and whether its script could be read at all."""

    instruction: Instruction
    commands: tuple[Command, ...]
    steps: tuple[Step, ...]
    readable: bool

    def kinds(self) -> set[str]:
        """The set of step kinds in this RUN."""
        return {step.kind for step in self.steps}

    def cache_targets(self) -> list[str]:
        """Targets of ``--mount=type=cache`` on this RUN."""
        return [m.get("target", "") for m in self.instruction.mounts()
                if m.get("type") == "cache"]

    def removed_paths(self) -> list[str]:
        """Paths this RUN removes with ``rm``: how caches are usually cleaned."""
        return [word for command in self.commands
                if command.words and posixpath.basename(command.words[0]) == "rm"
                for word in command.words[1:] if not word.startswith("-")]


@functools.lru_cache(maxsize=4096)
def run_info(ins: Instruction) -> RunInfo:
    """Read a RUN instruction's script into classified commands (memoised: rules ask often)."""
    commands, readable = run_commands(ins)
    return RunInfo(ins, tuple(commands), tuple(classify(c) for c in commands), readable)
