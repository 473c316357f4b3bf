"""What a stage inherits: the stages it is built FROM, and its working directory and variables.

Rules and fixes place files by path, so they need the WORKDIR in force at each instruction
and the ENV/ARG values that expand it, followed through the stage's ancestors; the rules that
judge what is shipped need the stages that end up in the default image.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from .dockerfile import Dockerfile, Instruction, Stage, arg_pairs, env_pairs, expand

__all__ = ["StageState", "absolute", "final_stages", "same_root", "stage_chain", "stage_state",
           "workdir"]


def _parent(df: Dockerfile, stage: Stage) -> Stage | None:
    """The earlier stage this one is built FROM, if any."""
    for other in df.stages[: stage.index]:
        if other.name and other.name == stage.image.lower():
            return other
    return None


def stage_chain(df: Dockerfile, stage: Stage) -> list[Stage]:
    """``stage`` and the stages it is built FROM, outermost ancestor first."""
    chain = [stage]
    seen = {stage.index}
    parent = _parent(df, stage)
    while parent is not None and parent.index not in seen:
        chain.insert(0, parent)
        seen.add(parent.index)
        parent = _parent(df, parent)
    return chain


def final_stages(df: Dockerfile) -> set[int]:
    """Indexes of the stages whose files end up in the image that is built by default."""
    return {s.index for s in stage_chain(df, df.stages[-1])} if df.stages else set()


@dataclass
class StageState:
    """Working directory and variables at each instruction of a stage, from its ancestors."""

    cwd_before: list[str]
    env_before: list[dict[str, str]]


def stage_state(df: Dockerfile, stage: Stage) -> StageState:
    """Track WORKDIR and ENV/ARG values through the stage's chain (best effort)."""
    cwd, env = "{W}", dict(df.global_arg_defaults())
    for ancestor in stage_chain(df, stage)[:-1]:
        for ins in ancestor.instructions:
            cwd, env = _advance(cwd, env, ins)
    cwds, envs = [], []
    for ins in stage.instructions:
        cwds.append(cwd)
        envs.append(dict(env))
        cwd, env = _advance(cwd, env, ins)
    return StageState(cwds, envs)


def _advance(cwd: str, env: dict[str, str], ins: Instruction) -> tuple[str, dict[str, str]]:
    """Apply one instruction's effect on the working directory and variables."""
    if ins.keyword == "WORKDIR":
        return workdir(cwd, ins, env), env
    if ins.keyword == "ENV":
        env = dict(env)
        for name, value in env_pairs(ins):
            env[name] = expand(value, env) or value
    elif ins.keyword == "ARG":
        env = dict(env)
        for name, value in arg_pairs(ins):
            if value is not None:
                env[name] = expand(value, env) or value
    return cwd, env


def workdir(current: str, ins: Instruction, env: dict[str, str]) -> str:
    """The working directory after a WORKDIR; ``{W}`` stands for the base image's."""
    value = expand(ins.args.strip().strip("\"'"), env)
    if value is None or not value:
        return "{?}"
    return posixpath.normpath(value if value.startswith("/") else posixpath.join(current, value))


def absolute(cwd: str, path: str) -> str:
    """``path`` resolved against ``cwd`` (which may be the symbolic ``{W}``)."""
    return posixpath.normpath(path if path.startswith("/") else posixpath.join(cwd, path))


def same_root(first: str, second: str) -> bool:
    """Whether two resolved paths can be compared (both absolute, or both under ``{W}``)."""
    return first.startswith("{W}") == second.startswith("{W}")
