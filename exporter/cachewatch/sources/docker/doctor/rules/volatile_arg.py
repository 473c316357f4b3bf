"""``volatile-arg-early``: build arguments and ENVs that change per build, in scope too early.

This follows Docker's documented rule ("Impact on build caching"): an ``ARG`` whose value
changed misses the cache at its first use, and every ``RUN`` after the ``ARG`` uses it
implicitly (as an environment variable). A ``LABEL`` does not count: with BuildKit it only
edits image metadata. A commit id changes with the sources, so for commit-like values only
steps before the first source copy are needlessly rebuilt; a date or a cache-buster changes
on every build, so everything after it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..copies import broad_copy
from ..dockerfile import Dockerfile, Instruction, arg_pairs, env_pairs, instruction_text, names_in
from ..finding import Context, Finding
from ..fixes import unified_diff
from ..installers import CHEAP_KINDS, INSTALL_KINDS
from ..runs import run_info
from ..volatility import volatility
from ..wording import line_list

__all__ = ["volatile_arg_early"]


def _expensive(ins: Instruction) -> bool:
    """A step worth keeping cached: anything but trivial commands and metadata."""
    if ins.keyword == "RUN":
        info = run_info(ins)
        return not info.readable or not info.kinds() <= CHEAP_KINDS
    return broad_copy(ins)


def _implicit_reader(ins: Instruction) -> bool:
    """A RUN that might read the variable from its environment (builds, scripts)."""
    if ins.keyword != "RUN":
        return False
    info = run_info(ins)
    return not info.readable or not info.kinds() <= (INSTALL_KINDS | CHEAP_KINDS | {
        "os-update", "fetch"})


@dataclass(frozen=True)
class _Facts:
    """Per-instruction facts of one stage, computed once for all of its ARGs."""

    names: list[frozenset[str]]
    expensive: list[bool]
    reader: list[bool]
    first_broad: int


def _facts(insts: list[Instruction]) -> _Facts:
    """Variables mentioned, cost and implicit use of the environment, per instruction."""
    return _Facts(
        names=[names_in(instruction_text(i)) for i in insts],
        expensive=[_expensive(i) for i in insts],
        reader=[_implicit_reader(i) for i in insts],
        first_broad=next((j for j, i in enumerate(insts) if broad_copy(i)), len(insts)),
    )


_LITERAL_DATE = re.compile(r"\d{4}-?\d{2}-?\d{2}([T ]?\d{2}:?\d{2}(:?\d{2}(\.\d+)?)?Z?)?")
_LITERAL_COMMIT = re.compile(r"[0-9a-f]{7,40}", re.I)
_LITERAL_EPOCH = re.compile(r"\d{10}(\d{3})?")


def volatile_arg_early(ctx: Context) -> list[Finding]:
    """ARGs with changing values (dates, commit ids) in scope before expensive steps, and ENVs
    set to such values in the Dockerfile itself (a release script rewrites them)."""
    findings = []
    for stage in ctx.dockerfile.stages:
        insts = stage.instructions
        facts: _Facts | None = None
        for index, ins in enumerate(insts):
            if ins.keyword == "ARG":
                pairs = [(n, v, volatility(n, v)) for n, v in arg_pairs(ins)]
                check = _volatile_finding
            elif ins.keyword == "ENV":
                pairs = [(n, v, _env_volatility(n, v)) for n, v in env_pairs(ins)]
                check = _volatile_env_finding
            else:
                continue
            for name, _, kind in pairs:
                if kind is None:
                    continue
                facts = facts or _facts(insts)
                finding = check(ctx, insts, facts, index, name, kind)
                if finding is not None:
                    findings.append(finding)
    return findings


def _rebuilt(insts: list[Instruction], indexes: list[int]) -> str:
    """``the step at line 4 rebuilds``, ``the steps at lines 4, 6 and 9 rebuild``."""
    lines = line_list([insts[j].start_line for j in indexes])
    return f"the step at {lines} rebuilds" if len(indexes) == 1 else \
        f"the steps at {lines} rebuild"


def _env_volatility(name: str, value: str) -> str | None:
    """An ENV literal that a build or release rewrites: its value is a moment or a commit.

    Unlike an ARG, a literal changes only when the file is edited, so the name alone is no
    evidence: ``ENV GITHUB_RUN_NUMBER 52``, ``ENV SOURCE_DATE_EPOCH=0`` or
    ``ENV GIT_COMMIT=unknown`` are constants. A dated value (any name), an epoch under a
    per-build name, or a hex id under a commit name is what a release script writes.
    One set from a variable (``ENV SHA=$GIT_SHA``) is the ARG's finding, not this one.
    """
    if "$" in value:
        return None
    literal = value.strip("'\"")
    if _LITERAL_DATE.fullmatch(literal):
        return "date"
    kind = volatility(name, value)
    if kind == "commit" and _LITERAL_COMMIT.fullmatch(literal):
        return "commit"
    if kind == "date" and _LITERAL_EPOCH.fullmatch(literal):
        return "date"
    return None


def _volatile_env_finding(
    ctx: Context, insts: list[Instruction], facts: _Facts, index: int, name: str, kind: str
) -> Finding | None:
    """An ENV's value is part of every later step's cache key: a changed value rebuilds all."""
    wasted = _wasted(facts, index + 1, kind, {name})
    if not wasted:
        return None
    ins = insts[index]
    rebuilt = _rebuilt(insts, wasted)
    why = "a date" if kind == "date" else "a commit id"
    message = (
        f"`ENV {name}` holds {why}, rewritten for each release or build; a changed ENV changes "
        f"the cache key of every later step, so {rebuilt} each time; set it after "
        f"{'it' if len(wasted) == 1 else 'them'} (or pass it as a build argument where it is "
        f"needed)")
    fix = None
    if len(env_pairs(ins)) == 1:
        fix = _move_arg(ctx, insts, facts, index, {name}, wasted, pairs=1)
    return Finding("volatile-arg-early", ins.start_line, message, fix, ins.display())


def _volatile_finding(
    ctx: Context, insts: list[Instruction], facts: _Facts, index: int, name: str, kind: str
) -> Finding | None:
    """Check one volatile ARG: which expensive steps its changes rebuild for nothing."""
    names = {name}
    derived = False
    for j in range(index + 1, len(insts)):
        if insts[j].keyword == "ENV" and facts.names[j] & names:
            derived = True
            names |= {n for n, _ in env_pairs(insts[j])}
    bust = next((j for j in range(index + 1, len(insts)) if insts[j].keyword == "RUN" or (
        insts[j].keyword in ("COPY", "ADD", "WORKDIR", "USER") and facts.names[j] & names)),
        None)
    if bust is None:
        return None
    wasted = _wasted(facts, bust, kind, names)
    if not wasted:
        return None
    ins = insts[index]
    rebuilt = _rebuilt(insts, wasted)
    why = "changes on every build" if kind == "date" else "changes on every commit"
    message = (
        f"`{name}` {why} and is in scope from line {ins.start_line}; Docker uses a changed "
        f"build argument at the first RUN after it, so {rebuilt} each "
        f"time; declare it just before the step that needs it (or at the end)"
    )
    fix = None if derived else _move_arg(ctx, insts, facts, index, names, wasted)
    return Finding("volatile-arg-early", ins.start_line, message, fix, ins.display())


def _wasted(facts: _Facts, start: int, kind: str, names: set[str]) -> list[int]:
    """Expensive steps from ``start`` on that a changed value rebuilds without using it.

    A commit id changes with the sources, so only steps before the first source copy are
    rebuilt for nothing; a date changes on every build, so every later step is.
    """
    limit = facts.first_broad if kind == "commit" else len(facts.names)
    return [j for j in range(start, limit) if facts.expensive[j] and not facts.names[j] & names]


def _move_arg(
    ctx: Context, insts: list[Instruction], facts: _Facts, index: int, names: set[str],
    wasted: list[int], pairs: int | None = None,
) -> str | None:
    """Move the ARG (and LABELs that use it) down to where it is first needed.

    A RUN that might read the value from its environment (a build script) keeps it above
    itself; if a needlessly rebuilt step comes at or after that RUN, moving the ARG cannot
    spare it, and a fix that leaves the finding standing is not offered.
    """
    df = ctx.dockerfile
    if (pairs if pairs is not None else len(arg_pairs(insts[index]))) != 1:
        return None
    target = next((j for j in range(index + 1, len(insts)) if insts[j].keyword != "LABEL" and (
        facts.names[j] & names or facts.reader[j])), len(insts))
    if any(j >= target for j in wasted):
        return None
    moved = [index] + [j for j in range(index + 1, target)
                       if insts[j].keyword == "LABEL" and facts.names[j] & names]
    block: list[str] = []
    removed: set[int] = set()
    for j in moved:
        block += _lines_of(df, insts[j])
        removed.update(range(insts[j].start_line, insts[j].end_line + 1))
    anchor = insts[target].start_line if target < len(insts) else insts[-1].end_line + 1
    new = [line for number, line in enumerate(df.lines[: anchor - 1], start=1)
           if number not in removed]
    new += block
    new += [line for number, line in enumerate(df.lines[anchor - 1:], start=anchor)
            if number not in removed]
    return unified_diff(df.lines, new, ctx.path)


def _lines_of(df: Dockerfile, ins: Instruction) -> list[str]:
    """The physical lines an instruction spans, heredoc bodies included."""
    return df.lines[ins.start_line - 1: ins.end_line]
