"""``package-cache-kept``: installs in the shipped image that keep their download cache.

Only the final stage and the stages it is built ``FROM`` are looked at: a cache left in a
build stage never reaches the image that is shipped.
"""

from __future__ import annotations

import posixpath
import re

from ..dockerfile import Instruction
from ..finding import Context, Finding
from ..fixes import append_command, unified_diff
from ..installers import Step
from ..runs import RunInfo, run_info
from ..shell import Command
from ..stages import final_stages, stage_state
from .apt_update import lone_updates

__all__ = ["package_cache_kept"]


_CACHE_HOMES = {
    "apt": ("/var/lib/apt",),
    "apk": ("/var/cache/apk", "/etc/apk/cache"),
    "yum": ("/var/cache/yum",),
    "dnf": ("/var/cache/dnf", "/var/cache/libdnf5"),
    "microdnf": ("/var/cache/yum", "/var/cache/dnf"),
    "tdnf": ("/var/cache/tdnf",),
    "pip": ("/.cache", "/pip"),
    "npm": (".npm",),
    "uv": ("/.cache", "/uv"),
}
_MANAGERS = ("apt", "apk", "yum", "dnf", "microdnf", "tdnf", "pip", "uv", "npm")
_CLEANUPS = {
    "apt": "rm -rf /var/lib/apt/lists/*",
    "apk": "rm -rf /var/cache/apk/*",
    "yum": "yum clean all",
    "dnf": "dnf clean all",
    "microdnf": "microdnf clean all",
    "tdnf": "tdnf clean all",
    "npm": "npm cache clean --force",
}


def _writes_cache(manager: str, steps: list[Step], env: dict[str, str]) -> bool:
    """Whether the commands of ``manager`` in one RUN leave a cache or index behind."""
    kinds = {s.kind for s in steps}
    if manager == "apt":
        return {"os-update", "os-install"} <= kinds
    if manager == "apk":
        return any(s.kind in ("os-install", "os-update") and not s.no_cache for s in steps)
    if manager == "pip":
        installs = [s for s in steps if s.kind in ("dep", "named", "source")]
        return any(not s.no_cache for s in installs) and not env.get("PIP_NO_CACHE_DIR")
    if manager == "npm":
        return bool(kinds & {"dep", "named"})
    if manager == "uv":
        installs = [s for s in steps if s.kind in ("dep", "named", "source")]
        return any(not s.no_cache for s in installs) and not _truthy(env.get("UV_NO_CACHE"))
    return "os-install" in kinds


def _truthy(value: str | None) -> bool:
    """How uv reads a boolean environment variable (``1``, ``true``, ``yes``, ``on``)."""
    return (value or "").strip("'\"").lower() in ("1", "true", "yes", "on")


def _cleans(command: Command, manager: str) -> bool:
    """``yum clean all``, ``npm cache clean`` and the like: verbs that empty the cache."""
    words = [w for w in command.words if not w.startswith("-")]
    if not words or posixpath.basename(words[0]) != manager:
        return False
    if manager == "uv":
        return words[1:3] in (["cache", "clean"], ["cache", "prune"])
    return words[1:2] == ["clean"] or (manager == "npm" and words[1:3] == ["cache", "clean"])


def _removes(path: str, manager: str) -> bool:
    """Whether ``rm`` of ``path`` removes ``manager``'s cache."""
    if manager in ("pip", "uv"):
        return "/.cache" in path or path.startswith(("~/.cache", "$HOME/.cache",
                                                     "${HOME}/.cache"))
    if manager == "npm":
        return ".npm" in path
    if manager == "apt":
        return path.startswith("/var/lib/apt/lists")
    return any(path.startswith(home) for home in _CACHE_HOMES.get(manager, ()))


def _keeps_cache(info: RunInfo, manager: str, env: dict[str, str]) -> bool:
    """Whether this RUN leaves ``manager``'s download cache or index in its layer."""
    steps = [s for s in info.steps if s.manager == manager]
    if not _writes_cache(manager, steps, env):
        return False
    homes = _CACHE_HOMES.get(manager, ())
    moved = env.get("UV_CACHE_DIR", "").rstrip("/") if manager == "uv" else ""
    if any(home in target for target in info.cache_targets()
           for home in ((moved,) if moved else homes)):
        return False
    if manager != "apk" and any(_cleans(c, manager) for c in info.commands):
        return False
    return not any(_removes(path, manager) or (moved and path.startswith(moved))
                   for path in info.removed_paths())


def package_cache_kept(ctx: Context) -> list[Finding]:
    """Package installs in the shipped image that keep their download cache or index."""
    df = ctx.dockerfile
    final = final_stages(df)
    reported = {info.instruction for info, _ in lone_updates(ctx)}
    findings = []
    for stage in df.stages:
        if stage.index not in final:
            continue
        state = stage_state(df, stage)
        for index, ins in enumerate(stage.instructions):
            if ins.keyword != "RUN":
                continue
            info = run_info(ins)
            env = dict(state.env_before[index])
            for command in info.commands:
                env.update(dict(command.env))
            managers = [m for m in _MANAGERS if _keeps_cache(info, m, env)
                        and not (m == "apt" and ins in reported)]
            if managers:
                findings.append(_cache_finding(ctx, info, managers))
    return findings


def _cache_finding(ctx: Context, info: RunInfo, managers: list[str]) -> Finding:
    """The finding for one RUN, with a fix that cleans in the same layer."""
    ins = info.instruction
    what = {"apt": "apt's package index (/var/lib/apt/lists)", "apk": "apk's index cache",
            "pip": "pip's wheel cache", "uv": "uv's cache (~/.cache/uv)",
            "npm": "npm's cache (~/.npm)"}
    kept = ", ".join(what.get(m, f"{m}'s cache") for m in managers)
    message = (
        f"this RUN leaves {kept} in the image layer: it is shipped and pulled with every "
        f"image but never used; clean it in the same RUN or use a "
        f"`--mount=type=cache` for it"
    )
    return Finding("package-cache-kept", ins.start_line, message, _cache_fix(ctx, ins, managers),
                   ins.display())


def _cache_fix(ctx: Context, ins: Instruction, managers: list[str]) -> str | None:
    """``--no-cache-dir`` for pip, ``--no-cache`` for uv, a cleanup command for the rest."""
    df = ctx.dockerfile
    lines: list[str] | None = list(df.lines)
    if "pip" in managers:
        pattern = re.compile(r"(\b(?:pip[0-9.]*|python[0-9.]*\s+-m\s+pip)\s+install)\b")
        for number in range(ins.start_line, ins.end_line + 1):
            if "--no-cache-dir" not in lines[number - 1]:
                lines[number - 1] = pattern.sub(r"\1 --no-cache-dir", lines[number - 1])
    if "uv" in managers:
        pattern = re.compile(r"(\buv(?:\s+pip)?\s+(?:install|sync))\b")
        for number in range(ins.start_line, ins.end_line + 1):
            if "--no-cache" not in lines[number - 1]:
                lines[number - 1] = pattern.sub(r"\1 --no-cache", lines[number - 1])
    cleanups = [_CLEANUPS[m] for m in managers if m in _CLEANUPS]
    if cleanups:
        lines = append_command(lines, df.escape, ins, " && ".join(cleanups))
    return unified_diff(df.lines, lines, ctx.path) if lines is not None else None
