"""Rendering fixes as unified diffs of the real file, and the line edits they share.

A fix is only worth showing if ``patch -p1``/``git apply`` takes it as is, so diffs are made
from the file's own lines (split the way Docker and ``patch`` split them) and headers name
the path as the repository does.
"""

from __future__ import annotations

import difflib
import re

from .dockerfile import Instruction, run_script

__all__ = ["append_command", "display_path", "file_lines", "unified_diff"]


def display_path(path: str) -> str:
    """The path as it appears in diff headers (``a/<path>``)."""
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/") or "Dockerfile"


def unified_diff(old: list[str], new: list[str], path: str, *, created: bool = False) -> str | None:
    """A unified diff (one line of context) between two versions of a file, None if equal.

    Only the region between the common head and tail is compared, so a small edit of a long
    file stays cheap; hunk line numbers are offset back to the whole file.
    """
    if old == new and not created:
        return None
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    start = max(head - 1, 0)
    old_part, new_part = old[start: len(old) - max(tail - 1, 0)], new[start: len(new) - max(
        tail - 1, 0)]
    name = display_path(path)
    out = ["--- /dev/null" if created else f"--- a/{name}", f"+++ b/{name}"]
    matcher = difflib.SequenceMatcher(None, old_part, new_part)
    for group in matcher.get_grouped_opcodes(1):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        out.append(f"@@ -{_range(start + i1, i2 - i1)} +{_range(start + j1, j2 - j1)} @@")
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                out += [" " + line for line in old_part[a1:a2]]
                continue
            out += ["-" + line for line in old_part[a1:a2]]
            out += ["+" + line for line in new_part[b1:b2]]
    return "\n".join(out) + "\n"


def _range(start: int, length: int) -> str:
    """A hunk range as difflib writes it (``start,length``; 1-based, or the line before)."""
    first = start + 1 if length else start
    return str(first) if length == 1 else f"{first},{length}"


def append_command(
    lines: list[str], escape: str, ins: Instruction, command: str
) -> list[str] | None:
    """A copy of the file's ``lines`` with ``command`` run at the end of a RUN, or None if
    that is unsafe. Callers pass lines they already edited (and the file's escape character),
    so several edits of one RUN combine into one fix."""
    if ins.exec_form is not None:
        return None
    lines = list(lines)
    if ins.heredocs:
        heredoc = ins.heredocs[0]
        terminator = lines[heredoc.end_line - 1] if heredoc.end_line <= len(lines) else ""
        if run_script(ins)[0] != heredoc.body or (
            terminator.lstrip("\t") if heredoc.chomp else terminator) != heredoc.name:
            return None
        lines.insert(heredoc.end_line - 1, command)
        return lines
    last = lines[ins.end_line - 1]
    stripped = last.rstrip()
    if stripped.endswith((escape, "&&", "||", "|")) or re.search(r"(^|\s)#", stripped):
        return None
    joiner = " " if stripped.endswith(";") else " && "
    lines[ins.end_line - 1] = stripped + joiner + command
    return lines


def file_lines(text: str) -> list[str]:
    """Lines as Docker and ``patch`` see them: split on newlines only (``splitlines`` would also
    split on form feeds and other separators, and the fix would not apply)."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    return lines[:-1] if lines[-1] == "" else lines
