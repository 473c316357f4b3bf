"""Run doctor's rules on a Dockerfile and render the findings for people, CI and tools.

Text output follows the compiler convention (``PATH:LINE: rule: message``) so editors and CI
annotators pick the lines up unchanged, with each fix's diff indented under its finding.
JSON output is a list of plain dicts with the same fields as :class:`Finding`.
``apply_fix`` applies one of those diffs to the text, so tests (and a future ``--fix``) can
check that a fix is a real edit of the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .dockerfile import parse
from .finding import Context, Finding
from .rules import run_all

__all__ = ["analyze", "apply_fix", "dockerignore_for", "exit_code", "to_dicts", "to_json",
           "to_text"]


def analyze(
    dockerfile_text: str,
    path: str,
    dockerignore_text: str | None = None,
    *,
    vcs_in_context: bool = True,
    check_dockerignore: bool = True,
) -> list[Finding]:
    """Every finding for one Dockerfile, ordered by line.

    ``dockerignore_text`` is the ignore file BuildKit would use (see :func:`dockerignore_for`),
    None when there is none. ``vcs_in_context`` is False when the build context has no
    ``.git`` (a sub-folder context), so a missing ``.git`` exclusion is not reported;
    ``check_dockerignore=False`` skips both ignore-file rules when the file is unknown.
    """
    context = Context(
        dockerfile=parse(dockerfile_text),
        path=path,
        dockerignore=dockerignore_text,
        vcs_in_context=vcs_in_context,
        check_dockerignore=check_dockerignore,
    )
    return run_all(context)


def dockerignore_for(dockerfile: Path, context: Path | None = None) -> str | None:
    """The ignore file BuildKit reads: ``<Dockerfile>.dockerignore`` first, then the context's.

    BuildKit prefers an ignore file named after the Dockerfile (``app.Dockerfile`` ->
    ``app.Dockerfile.dockerignore``) next to it, and otherwise uses ``.dockerignore`` at the
    root of the build context (the Dockerfile's folder unless told otherwise).
    """
    candidates = [dockerfile.with_name(dockerfile.name + ".dockerignore")]
    candidates.append((context if context is not None else dockerfile.parent) / ".dockerignore")
    for candidate in candidates:
        try:
            return candidate.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
    return None


def to_text(findings: list[Finding], path: str, notes: list[str | None] | None = None) -> str:
    """``PATH:LINE: rule: message`` per finding, then its note (``notes[i]``, such as what it
    cost) and its fix, indented below it."""
    out: list[str] = []
    for index, finding in enumerate(findings):
        out.append(f"{path}:{finding.line}: {finding.rule}: {finding.message}")
        if notes and notes[index]:
            out.append(f"    {notes[index]}")
        if finding.fix:
            out += ["    " + line for line in finding.fix.rstrip("\n").split("\n")]
    return "\n".join(out) + ("\n" if out else "")


def to_dicts(findings: list[Finding], path: str) -> list[dict[str, object]]:
    """Findings as plain dicts (path, line, rule, message, fix, instruction)."""
    return [{"path": path, "line": f.line, "rule": f.rule, "message": f.message,
             "fix": f.fix, "instruction": f.instruction} for f in findings]


def to_json(findings: list[Finding], path: str) -> str:
    """A JSON list of findings (path, line, rule, message, fix, instruction) for tools."""
    return json.dumps(to_dicts(findings, path), indent=2)


def exit_code(findings: list[Finding]) -> int:
    """1 when something was found, for CI gates; 0 otherwise."""
    return 1 if findings else 0


_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def apply_fix(text: str, fix: str) -> str:
    """Apply a single-file unified diff (as produced by the rules) to ``text``.

    Line endings and the presence of a final newline are kept as they were. Raises
    ValueError when the diff does not match the text, like ``patch`` refusing a hunk.
    """
    newline = "\r\n" if "\r\n" in text else "\n"
    final_newline = text.endswith("\n") or not text
    lines = text.split("\n")
    if final_newline:
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    result: list[str] = []
    position = 0
    diff_lines = fix.split("\n")
    index = 0
    while index < len(diff_lines):
        match = _HUNK_RE.match(diff_lines[index])
        index += 1
        if not match:
            continue
        start = int(match.group(1)) - (0 if match.group(2) == "0" else 1)
        if start < position:
            raise ValueError("overlapping hunks")
        result += lines[position:start]
        position = start
        while index < len(diff_lines) and diff_lines[index][:1] in (" ", "-", "+", "\\"):
            line = diff_lines[index]
            index += 1
            if line.startswith("\\"):
                continue
            if line[:1] in (" ", "-"):
                if position >= len(lines) or lines[position] != line[1:]:
                    raise ValueError(f"hunk does not match line {position + 1}")
                position += 1
                if line[:1] == " ":
                    result.append(line[1:])
            else:
                result.append(line[1:])
    result += lines[position:]
    return newline.join(result) + (newline if final_newline and result else "")
