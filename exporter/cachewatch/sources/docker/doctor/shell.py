"""Shell text split into words and simple commands, the way the rules need to read RUN scripts.

A best effort that never raises: it follows quotes, ``${...}`` and the shell's operators
closely enough to find each command and what joins it to the next (the ``source-before-deps``
fix splits a RUN at an ``&&``), and gives up gracefully on anything it cannot balance.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

__all__ = ["Command", "raw_words", "shell_words", "split_commands"]


def raw_words(text: str) -> list[str]:
    """Split on unquoted whitespace but keep quotes, so ``<<"EOF"`` stays one word."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
            current.append(char)
        elif char.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        words.append("".join(current))
    return words


def shell_words(text: str) -> list[str]:
    """POSIX-shell word splitting that falls back to whitespace when quotes do not balance."""
    try:
        return shlex.split(text, posix=True)
    except ValueError:
        return text.split()


@dataclass(frozen=True)
class Command:
    """One simple command from a RUN script, with its span in that script.

    ``words`` has inline ``NAME=value`` assignments and wrappers (``sudo``, ``exec``) removed;
    they are kept in ``env``. ``end`` is where the command's text stops and ``separator`` is
    the operator that follows it (``&&``, ``||``, ``;``, ``|``, newline or "").
    """

    words: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    start: int
    end: int
    separator: str


_WRAPPERS = frozenset({"sudo", "exec", "time", "nice", "nohup", "command", "builtin", "!"})
_KEYWORDS = frozenset({
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "case", "esac",
    "in", "{", "}", "(", ")", ";;",
})


def split_commands(script: str) -> list[Command]:
    """Split a shell script into simple commands (a best effort, never raising)."""
    script = re.sub(r"\\\r?\n", "  ", script)
    commands: list[Command] = []
    for start, end, separator in _segments(script):
        text = _strip_comment(script[start:end])
        words = shell_words(text)
        if words and words[0] in ("for", "case", "select", "function"):
            continue  # a loop or case header names variables and patterns, not commands
        env: list[tuple[str, str]] = []
        while words and (words[0] in _WRAPPERS or words[0] in _KEYWORDS
                         or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0])):
            word = words.pop(0)
            if "=" in word and word not in _KEYWORDS:
                name, _, value = word.partition("=")
                env.append((name, value))
        if words and words[0] == "env":
            words.pop(0)
            while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                name, _, value = words.pop(0).partition("=")
                env.append((name, value))
        if words or env:
            commands.append(Command(tuple(words), tuple(env), start, end, separator))
    return commands


def _strip_comment(text: str) -> str:
    """Drop an unquoted ``# comment`` (heredoc scripts keep theirs)."""
    quote = ""
    for position, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#" and (position == 0 or text[position - 1].isspace()):
            return text[:position]
    return text


def _segments(script: str) -> list[tuple[int, int, str]]:
    """Spans of text between unquoted shell operators, with the operator after each."""
    spans: list[tuple[int, int, str]] = []
    quote = ""
    start = 0
    position = 0
    length = len(script)
    while position < length:
        char = script[position]
        if quote:
            if char == "\\" and quote == '"':
                position += 2
                continue
            if char == quote:
                quote = ""
            position += 1
            continue
        if char == "\\":
            position += 2
            continue
        if char == "$" and script[position + 1:position + 2] == "{":
            closing = script.find("}", position)
            position = closing + 1 if closing > 0 else length
            continue
        if char in "\"'":
            quote = char
            position += 1
            continue
        operator = _operator_at(script, position)
        if operator:
            spans.append((start, position, operator))
            position += len(operator)
            start = position
            continue
        position += 1
    spans.append((start, length, ""))
    return spans


def _operator_at(script: str, position: int) -> str:
    """The shell operator starting at ``position``, or ""."""
    two = script[position:position + 2]
    if two in ("&&", "||", ";;", "$("):
        return two
    char = script[position]
    if char in ";|\n()`":
        return char
    if char == "&" and script[position + 1:position + 2] != ">" and (
        position == 0 or script[position - 1] not in "<>"
    ):
        return char
    return ""
