"""``dockerignore-missing`` and ``dockerignore-leaks``: what ``COPY .`` drags into the key.

Every file a copy of the whole context takes is part of that step's cache key, so a ``.git``
folder (changed by every commit) or a local ``node_modules`` busts it for nothing. Patterns
are matched the way BuildKit matches them (Go's ``filepath.Match`` plus ``**``, the last
matching pattern wins) so a leak is only reported when BuildKit would really send the files.
"""

from __future__ import annotations

import posixpath
import re

from ..copies import copies_context, copy_sources
from ..dockerfile import Dockerfile
from ..finding import Context, Finding
from ..fixes import display_path, file_lines, unified_diff
from ..runs import run_info

__all__ = ["dockerignore_leaks", "dockerignore_missing"]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regex on slash paths."""
    out = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1: end].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                index = end
        else:
            out.append(re.escape(char))
        index += 1
    try:
        return re.compile("".join(out) + r"(?:/.*)?\Z")
    except re.error:
        return re.compile(re.escape(pattern) + r"(?:/.*)?\Z")


def _ignored(dockerignore: str, path: str) -> bool:
    """Whether ``path`` is left out of the context (last matching pattern wins, ``!`` undoes)."""
    result = False
    for raw in file_lines(dockerignore):
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip()
        pattern = posixpath.normpath(pattern.replace("\\", "/")).lstrip("/")
        if pattern in ("", "."):
            continue
        if _pattern_regex(pattern).match(path):
            result = not negate
    return result


def _looks_like_node(df: Dockerfile) -> bool:
    """Whether the build is a Node one (so a local node_modules would be sent and copied)."""
    for stage in df.stages:
        if re.match(r"^(.*/)?node(:|$)", stage.image.lower()):
            return True
    for ins in df.instructions:
        if ins.keyword in ("COPY", "ADD") and any(
            "package" in posixpath.basename(s) and s.endswith(("json", "*"))
            for s in copy_sources(ins)
        ):
            return True
        if ins.keyword == "RUN" and any(s.manager in ("npm", "yarn", "pnpm")
                                        for s in run_info(ins).steps):
            return True
    return False


def _ignore_path(path: str) -> str:
    """Where the .dockerignore next to the Dockerfile lives, for diff headers."""
    directory = posixpath.dirname(display_path(path))
    return posixpath.join(directory, ".dockerignore") if directory else ".dockerignore"


def dockerignore_missing(ctx: Context) -> list[Finding]:
    """``COPY .`` with no .dockerignore: the whole folder, VCS data included, is hashed."""
    if not ctx.check_dockerignore or ctx.dockerignore is not None:
        return []
    ins = next((i for i in ctx.dockerfile.instructions if copies_context(i)), None)
    if ins is None:
        return []
    entries = [".git"] + (["node_modules"] if _looks_like_node(ctx.dockerfile) else [])
    message = (
        f"`{ins.display()}` copies the whole build context and there is no .dockerignore: "
        f"every file there ({', '.join(entries)}, editor and build leftovers) is part of the "
        f"step's cache key, so unrelated changes bust it; add a .dockerignore"
    )
    fix = unified_diff([], entries, _ignore_path(ctx.path), created=True)
    return [Finding("dockerignore-missing", ins.start_line, message, fix, ins.display())]


def dockerignore_leaks(ctx: Context) -> list[Finding]:
    """A .dockerignore that still lets ``.git`` (or ``node_modules`` for Node) into the copy."""
    if not ctx.check_dockerignore or ctx.dockerignore is None:
        return []
    ins = next((i for i in ctx.dockerfile.instructions if copies_context(i)), None)
    if ins is None:
        return []
    leaks = []
    if ctx.vcs_in_context and not _ignored(ctx.dockerignore, ".git/HEAD"):
        leaks.append(".git")
    if _looks_like_node(ctx.dockerfile) and not _ignored(ctx.dockerignore,
                                                         "node_modules/x/package.json"):
        leaks.append("node_modules")
    if not leaks:
        return []
    message = (
        f"the .dockerignore does not exclude {' or '.join(leaks)}, so `{ins.display()}` copies "
        f"it: its content changes on every commit or install and busts this step and all "
        f"after it; add {', '.join(leaks)} to .dockerignore"
    )
    old = file_lines(ctx.dockerignore)
    fix = unified_diff(old, old + leaks, _ignore_path(ctx.path))
    return [Finding("dockerignore-leaks", ins.start_line, message, fix, ins.display())]
