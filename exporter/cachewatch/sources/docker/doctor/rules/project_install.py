"""``deps-with-project``: one install step builds the project and installs its dependencies.

``pip install .``, ``poetry install`` and ``uv sync`` build the project from its files and
install every dependency in the same layer, so anything copied in front of that step (the
README the build metadata reads, the sources, a config file) decides when all dependencies are
downloaded and installed again. The cure is two steps: the dependencies alone from what lists
them (a requirements or lock file), then the sources and the project with ``--no-deps`` (or
``--only-root``, or a plain ``uv sync``). The rule stays silent when an earlier step of the
stage already installed dependencies from a manifest (the project step then finds them
installed), when the step installs offline (``--no-index``: a wheelhouse), and when the step
also installs from a manifest itself (``source-before-deps`` judges that RUN). It offers no fix:
where the dependency list should come from is the project's choice.
"""

from __future__ import annotations

import posixpath

from ..copies import clean_source, copies_context, copy_sources
from ..dockerfile import Dockerfile, Instruction, Stage
from ..finding import Context, Finding
from ..runs import RunInfo, run_info
from ..shell import Command
from ..stages import stage_chain
from ..wording import line_list

__all__ = ["busting_copies", "deps_with_project"]

_PYTHON = frozenset({"pip", "uv", "poetry", "pipenv"})
# What a dependency install may read: copying these in front of it is the right thing to do.
_MANIFESTS = ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "poetry.lock",
              "poetry.toml", "uv.lock", "uv.toml", "Pipfile", "Pipfile.lock", "pdm.lock",
              "pip.conf", ".python-version", "requirements", "constraints")
_TWO_STEPS = {
    "pip": "install the dependencies alone first (`pip install -r requirements.txt`, from a "
           "requirements or lock file or the dependency list), then copy {what} and install "
           "the project with `pip install --no-deps .`",
    "uv": "install the dependencies alone first (`uv pip install -r requirements.txt`, from a "
          "requirements or lock file), then copy {what} and install the project with "
          "`uv pip install --no-deps .`",
    "uv-sync": "run `uv sync --no-install-project` with only pyproject.toml and uv.lock copied, "
               "then copy {what} and run `uv sync`",
    "poetry": "run `poetry install --no-root` with only pyproject.toml and poetry.lock copied, "
              "then copy {what} and run `poetry install --only-root`",
}


def _manifest(source: str) -> bool:
    """Whether a copied path is something the dependency install itself reads."""
    name = posixpath.basename(clean_source(source))
    return name.startswith(_MANIFESTS) and "*" not in name.replace("requirements*", "")


def _project_command(info: RunInfo) -> Command | None:
    """The command of a RUN that builds the project with its dependencies, if any."""
    if any(s.kind == "dep" and s.manager in _PYTHON for s in info.steps):
        return None
    return next((c for c, s in zip(info.commands, info.steps, strict=True) if s.project), None)


def _earlier(df: Dockerfile, stage: Stage, ins: Instruction) -> list[Instruction]:
    """Every instruction that builds the layers under ``ins``: its stage's ancestors first."""
    earlier: list[Instruction] = []
    for ancestor in stage_chain(df, stage)[:-1]:
        earlier += ancestor.instructions
    return earlier + stage.instructions[: stage.instructions.index(ins)]


def busting_copies(df: Dockerfile, ins: Instruction) -> list[Instruction]:
    """The copies in front of a project install that bring in more than its manifests."""
    if ins.keyword != "RUN" or not 0 <= ins.stage < len(df.stages):
        return []
    return [i for i in _earlier(df, df.stages[ins.stage], ins)
            if i.keyword in ("COPY", "ADD") and not i.has_flag("from")
            and any(not _manifest(s) for s in copy_sources(i))]


def _named(copies: list[Instruction]) -> str:
    """``README.md (line 3)``, ``the whole build context (line 5)``: what a copy brings in."""
    parts = []
    for ins in copies:
        if copies_context(ins):
            parts.append(f"the whole build context (`{ins.display()}`, line {ins.start_line})")
            continue
        names = [clean_source(s) for s in copy_sources(ins) if not _manifest(s)]
        parts.append(f"{', '.join(names)} ({line_list([ins.start_line])})")
    return "; ".join(parts[:3]) + (f" and {len(parts) - 3} more copies" if len(parts) > 3 else "")


def deps_with_project(ctx: Context) -> list[Finding]:
    """Project installs that reinstall every dependency whenever a file copied before changes."""
    df = ctx.dockerfile
    findings = []
    for stage in df.stages:
        for ins in stage.instructions:
            if ins.keyword != "RUN":
                continue
            command = _project_command(run_info(ins))
            if command is None:
                continue
            earlier = _earlier(df, stage, ins)
            if any(s.kind == "dep" and s.manager in _PYTHON
                   for i in earlier if i.keyword == "RUN" for s in run_info(i).steps):
                continue
            copies = busting_copies(df, ins)
            if copies:
                findings.append(_finding(ins, command, copies))
    return findings


def _finding(ins: Instruction, command: Command, copies: list[Instruction]) -> Finding:
    """Name the step, the copies that bust it, and the two steps that replace it."""
    step = run_info(ins).steps[run_info(ins).commands.index(command)]
    label = " ".join(command.words)
    label = label if len(label) <= 48 else label[:45] + "..."
    manager = "uv-sync" if step.manager == "uv" and "sync" in command.words else step.manager
    what = "the README and the sources" if len(copies) > 1 or copies_context(copies[0]) else \
        ", ".join(clean_source(s) for s in copy_sources(copies[0]) if not _manifest(s))
    single = len(copies) == 1 and not copies_context(copies[0]) and "," not in what
    message = (
        f"`{label}` builds the project and installs its dependencies in one layer, after "
        f"copying {_named(copies)}: a change to {'it' if single else 'any of them'} "
        f"reinstalls every dependency; "
        + _TWO_STEPS.get(manager or "pip", _TWO_STEPS["pip"]).format(what=what))
    return Finding("deps-with-project", ins.start_line, message, None, ins.display())
