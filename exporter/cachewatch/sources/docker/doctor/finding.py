"""What every rule reads and returns: a :class:`Context` in, :class:`Finding` objects out.

Kept apart from the rules so the rule modules, the reports and the cost model can all name
these two types without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from .dockerfile import Dockerfile

__all__ = ["Context", "Finding"]


@dataclass(frozen=True)
class Finding:
    """One problem: the rule, the 1-based line, why it costs cache, and a diff that fixes it."""

    rule: str
    line: int
    message: str
    fix: str | None
    instruction: str


@dataclass(frozen=True)
class Context:
    """What the rules look at: the parsed file, how to name it, and its ignore file.

    ``dockerignore`` is the text of the ignore file BuildKit would use, or None when there is
    none. ``vcs_in_context`` says whether a ``.git`` folder sits in the build context (a
    Dockerfile in a sub-folder built with that folder as context has none), and
    ``check_dockerignore`` turns the two ignore-file rules off when nobody knows.
    """

    dockerfile: Dockerfile
    path: str
    dockerignore: str | None = None
    vcs_in_context: bool = True
    check_dockerignore: bool = True
