"""What a COPY or ADD takes from the build context.

Whether a copy brings in the project's sources (and so busts every later step when any file
changes) decides most findings, so the rules share one reading of a copy's sources.
"""

from __future__ import annotations

import re

from .dockerfile import Instruction

__all__ = ["ROOT_SOURCES", "broad_copy", "clean_source", "copies_context", "copy_sources"]


def copy_sources(ins: Instruction) -> list[str]:
    """Sources of a COPY/ADD (everything but the destination), heredoc names excluded."""
    words = ins.words()
    if len(words) < 2:
        return []
    heredoc_names = {h.name for h in ins.heredocs}
    sources = []
    for word in words[:-1]:
        match = re.match(r"^\d*<<-?[\"']?([^\"']+)", word)
        if match and match.group(1) in heredoc_names:
            continue
        sources.append(word)
    return sources


def clean_source(source: str) -> str:
    """A source path as the context sees it: no ``./`` prefix, no trailing slash."""
    source = source.replace("\\", "/")
    while source.startswith("./"):
        source = source[2:]
    return source.rstrip("/") or "."


ROOT_SOURCES = frozenset({".", "*", "./*", "/"})
_SOURCE_DIRS = frozenset({"src", "app", "lib", "cmd", "pkg", "internal", "source", "sources",
                          "code", "project"})


def copies_context(ins: Instruction) -> bool:
    """Whether a COPY/ADD copies the whole build context (``COPY . .`` and friends)."""
    if ins.keyword not in ("COPY", "ADD") or ins.has_flag("from"):
        return False
    return any(clean_source(s) in ROOT_SOURCES for s in copy_sources(ins))


def broad_copy(ins: Instruction) -> bool:
    """A copy of the sources: the whole context or a top-level source folder."""
    if ins.keyword not in ("COPY", "ADD") or ins.has_flag("from"):
        return False
    return any(clean_source(s) in ROOT_SOURCES or clean_source(s) in _SOURCE_DIRS
               for s in copy_sources(ins))
