"""A Dockerfile parser that follows BuildKit's frontend closely enough to name the right lines.

Doctor's findings are only useful if ``PATH:LINE`` points at the instruction a human sees, so
this parser keeps each instruction's first and last physical line, exactly as BuildKit counts
them: parser directives at the top (``# syntax=``, ``# escape=``), line continuations with the
escape character (which ``# escape=`` can change to a backtick, as Windows Dockerfiles do),
comment and blank lines inside a continuation (skipped, not ending it), heredocs after ``RUN``,
``COPY`` and ``ADD`` (their bodies are data, so a ``\\`` or ``#`` in them means nothing here),
the JSON exec form and leading ``--flags``.

It never raises: a Dockerfile is user input, and an unknown instruction, an unterminated
heredoc or a stray quote must become something rules can skip, not a traceback in CI.
Nothing here knows about caches; the rules live in the ``rules`` package, and splitting a
RUN script into commands in ``shell.py``.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field

from .shell import Command, raw_words, shell_words, split_commands

__all__ = [
    "Dockerfile",
    "Flag",
    "Heredoc",
    "Instruction",
    "Stage",
    "arg_pairs",
    "env_pairs",
    "expand",
    "instruction_text",
    "names_in",
    "parse",
    "references",
    "run_commands",
    "run_script",
]


_KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_DIRECTIVE_RE = re.compile(r"^\s*#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.*?)\s*$")
_KEYWORD_RE = re.compile(r"^\s*(\S+)(.*)$", re.DOTALL)
_FLAG_RE = re.compile(r"""\s*--([A-Za-z][\w-]*)(?:=("[^"]*"|'[^']*'|\S*))?(?=\s|$)""")
_HEREDOC_WORD_RE = re.compile(r"^(\d*)<<(-?)([^<]+)$")
_HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})
_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "busybox"})


@dataclass(frozen=True)
class Flag:
    """One ``--name=value`` (or bare ``--name``) option before an instruction's arguments."""

    name: str
    value: str | None


@dataclass(frozen=True)
class Heredoc:
    """A here-document attached to RUN, COPY or ADD; ``body`` ends with a newline per line."""

    name: str
    body: str
    chomp: bool
    start_line: int
    end_line: int


@dataclass(frozen=True)
class Instruction:
    """One logical instruction with the physical lines it spans (1-based, inclusive).

    ``rest`` is everything after the keyword with continuations joined the way BuildKit joins
    them (escape and newline removed, nothing inserted); ``args`` is ``rest`` without the
    leading flags. ``stage`` is -1 for instructions before the first FROM.
    """

    keyword: str
    rest: str
    flags: tuple[Flag, ...]
    args: str
    exec_form: tuple[str, ...] | None
    heredocs: tuple[Heredoc, ...]
    start_line: int
    end_line: int
    stage: int

    def flag(self, name: str) -> str | None:
        """The last value given for ``--name`` (the one BuildKit uses), or None."""
        values = self.flag_values(name)
        return values[-1] if values else None

    def flag_values(self, name: str) -> list[str]:
        """Every value of ``--name`` in order (``--mount`` may repeat); bare flags give ""."""
        return [f.value if f.value is not None else "" for f in self.flags if f.name == name]

    def has_flag(self, name: str) -> bool:
        """Whether ``--name`` appears at all, with or without a value."""
        return any(f.name == name for f in self.flags)

    def mounts(self) -> list[dict[str, str]]:
        """``RUN --mount`` options as dicts; ``type`` defaults to ``bind`` as in BuildKit."""
        result = []
        for value in self.flag_values("mount"):
            options: dict[str, str] = {"type": "bind"}
            for part in _unquote(value).split(","):
                key, sep, val = part.partition("=")
                key = key.strip().lower()
                if key:
                    options[key] = val.strip() if sep else "true"
            if "dst" in options or "destination" in options:
                options.setdefault("target", options.get("dst") or options.get("destination", ""))
            if "src" in options:
                options.setdefault("source", options["src"])
            result.append(options)
        return result

    def words(self) -> list[str]:
        """Arguments split like a shell would, or the exec-form list."""
        if self.exec_form is not None:
            return list(self.exec_form)
        return shell_words(self.args)

    def display(self) -> str:
        """A one-line rendering for reports: keyword and arguments, whitespace collapsed."""
        return " ".join(f"{self.keyword} {self.rest}".split())


@dataclass
class Stage:
    """A build stage: its FROM and the instructions up to the next FROM."""

    index: int
    name: str | None
    image: str
    platform: str | None
    start: Instruction
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    """The parsed file. ``lines`` are the physical lines without terminators."""

    lines: list[str]
    newline: str
    final_newline: bool
    directives: dict[str, str]
    escape: str
    instructions: list[Instruction]
    global_args: list[Instruction]
    stages: list[Stage]

    def global_arg_defaults(self) -> dict[str, str]:
        """Defaults of the ARGs before the first FROM: all a FROM line can expand."""
        env: dict[str, str] = {}
        for ins in self.global_args:
            for name, value in arg_pairs(ins):
                if value is not None:
                    env[name] = expand(value, env) or value
        return env


def parse(text: str) -> Dockerfile:
    """Parse Dockerfile text; never raises, whatever the input."""
    if not isinstance(text, str):
        text = str(text)
    text = text.removeprefix("\ufeff")
    raw_lines = text.split("\n")
    final_newline = len(raw_lines) > 1 and raw_lines[-1] == ""
    if final_newline:
        raw_lines.pop()
    crlf = sum(1 for line in raw_lines if line.endswith("\r"))
    newline = "\r\n" if raw_lines and crlf * 2 > len(raw_lines) else "\n"
    lines = [line.removesuffix("\r") for line in raw_lines]
    directives, first = _directives(lines)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        escape = "\\"
    instructions = list(_instructions(lines, first, escape))
    global_args, stages = _stages(instructions)
    return Dockerfile(
        lines=lines,
        newline=newline,
        final_newline=final_newline,
        directives=directives,
        escape=escape,
        instructions=instructions,
        global_args=global_args,
        stages=stages,
    )


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    """Read parser directives; return them and the index of the first line after them."""
    found: dict[str, str] = {}
    index = 0
    while index < len(lines):
        match = _DIRECTIVE_RE.match(lines[index])
        if not match:
            break
        key = match.group(1).lower()
        if key not in _KNOWN_DIRECTIVES or key in found:
            break
        found[key] = match.group(2)
        index += 1
    return found, index


def _instructions(lines: list[str], start: int, escape: str) -> Iterator[Instruction]:
    """Yield instructions with their line spans, following BuildKit's line rules."""
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    stage = -1
    index = start
    while index < len(lines):
        first = lines[index].lstrip()
        index += 1
        if not first.strip() or first.startswith("#"):
            continue
        start_line = end_line = index
        logical, ended = _trim_continuation(first, continuation)
        while not ended and index < len(lines):
            line = lines[index]
            index += 1
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            part, ended = _trim_continuation(line, continuation)
            logical += part
            end_line = index
        instruction, index, end_line = _build(logical, lines, index, start_line, end_line, stage)
        if instruction.keyword == "FROM":
            stage += 1
            instruction = _with_stage(instruction, stage)
        yield instruction


def _trim_continuation(line: str, continuation: re.Pattern[str]) -> tuple[str, bool]:
    """Strip a trailing escape character; report whether the logical line ended here."""
    if continuation.search(line):
        return continuation.sub("", line), False
    return line, True


def _build(
    logical: str, lines: list[str], index: int, start_line: int, end_line: int, stage: int
) -> tuple[Instruction, int, int]:
    """Turn one logical line into an Instruction, reading heredoc bodies that follow it."""
    match = _KEYWORD_RE.match(logical)
    keyword = match.group(1).upper() if match else logical.strip().upper()
    rest = match.group(2).strip() if match else ""
    heredocs: list[Heredoc] = []
    if keyword in _HEREDOC_KEYWORDS and "<<" in rest:
        for name, chomp in _heredoc_names(rest):
            body_start = index + 1
            body, index, terminated = _read_heredoc(lines, index, name, chomp)
            body_end = index if terminated else max(index, body_start)
            heredocs.append(Heredoc(name, body, chomp, body_start, body_end))
            end_line = max(end_line, index)
    flags, args = _flags(rest)
    instruction = Instruction(
        keyword=keyword,
        rest=rest,
        flags=flags,
        args=args,
        exec_form=_exec_form(args),
        heredocs=tuple(heredocs),
        start_line=start_line,
        end_line=end_line,
        stage=stage,
    )
    return instruction, index, end_line


def _heredoc_names(rest: str) -> list[tuple[str, bool]]:
    """Heredoc delimiters in an instruction line, as BuildKit finds them (word by word)."""
    found = []
    for word in raw_words(rest):
        match = _HEREDOC_WORD_RE.match(word)
        if not match:
            continue
        name = match.group(3)
        if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
            name = name[1:-1]
        if name:
            found.append((name, match.group(2) == "-"))
    return found


def _read_heredoc(lines: list[str], index: int, name: str, chomp: bool) -> tuple[str, int, bool]:
    """Collect lines up to the terminator; an unterminated heredoc takes the rest of the file."""
    body: list[str] = []
    while index < len(lines):
        line = lines[index]
        index += 1
        candidate = line.lstrip("\t") if chomp else line
        if candidate == name:
            return "".join(part + "\n" for part in body), index, True
        body.append(line)
    return "".join(part + "\n" for part in body), index, False


def _flags(rest: str) -> tuple[tuple[Flag, ...], str]:
    """Split leading ``--flag[=value]`` words off the arguments."""
    flags: list[Flag] = []
    position = 0
    while True:
        match = _FLAG_RE.match(rest, position)
        if not match or match.end() == position:
            break
        value = match.group(2)
        flags.append(Flag(match.group(1).lower(), _unquote(value) if value is not None else None))
        position = match.end()
    return tuple(flags), rest[position:].strip()


def _unquote(value: str) -> str:
    """Drop one pair of surrounding quotes, as the flag parser does."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _exec_form(args: str) -> tuple[str, ...] | None:
    """The JSON array form, if ``args`` is one; BuildKit falls back to shell form otherwise."""
    if not args.startswith("["):
        return None
    try:
        value = json.loads(args)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


def _with_stage(instruction: Instruction, stage: int) -> Instruction:
    """A copy of ``instruction`` assigned to ``stage`` (FROM opens the stage it belongs to)."""
    return Instruction(
        keyword=instruction.keyword,
        rest=instruction.rest,
        flags=instruction.flags,
        args=instruction.args,
        exec_form=instruction.exec_form,
        heredocs=instruction.heredocs,
        start_line=instruction.start_line,
        end_line=instruction.end_line,
        stage=stage,
    )


def _stages(instructions: list[Instruction]) -> tuple[list[Instruction], list[Stage]]:
    """Group instructions into the global ARG block and the stages."""
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.args.split()
            image = words[0] if words else ""
            name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(len(stages), name, image, ins.flag("platform"), ins))
        elif stages:
            stages[-1].instructions.append(ins)
        elif ins.keyword == "ARG":
            global_args.append(ins)
    return global_args, stages


def arg_pairs(ins: Instruction) -> list[tuple[str, str | None]]:
    """``ARG a=1 b`` as ``[("a", "1"), ("b", None)]``; values keep their quoting removed."""
    pairs: list[tuple[str, str | None]] = []
    for word in shell_words(ins.args):
        name, sep, value = word.partition("=")
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            pairs.append((name, value if sep else None))
    return pairs


def env_pairs(ins: Instruction) -> list[tuple[str, str]]:
    """``ENV a=1 b=2`` and the legacy ``ENV a 1 2`` form as name/value pairs."""
    words = shell_words(ins.args)
    if not words:
        return []
    if "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    pairs = []
    for word in words:
        name, sep, value = word.partition("=")
        if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            pairs.append((name, value))
    return pairs


_VAR_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_MODIFIER_RE = re.compile(r"^(:?[-+])(.*)$", re.DOTALL)


def expand(text: str, env: dict[str, str]) -> str | None:
    """Expand ``$VAR``/``${VAR}``/``${VAR:-x}``/``${VAR:+x}``; None if a name is unknown."""
    unknown = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal unknown
        name = match.group(1) or match.group(3)
        modifier = _MODIFIER_RE.match(match.group(2) or "")
        operator, word = (modifier.group(1), modifier.group(2)) if modifier else ("", "")
        value = env.get(name)
        if operator in (":-", "-"):
            if value is None or (operator == ":-" and value == ""):
                return expand(word, env) or word
            return value
        if operator in (":+", "+"):
            return word if value else ""
        if value is None:
            unknown = True
            return ""
        return value

    result = _VAR_RE.sub(substitute, text)
    return None if unknown else result


def names_in(text: str) -> frozenset[str]:
    """Every variable name ``text`` mentions as ``$NAME`` or ``${NAME...}``."""
    return frozenset(match.group(1) or match.group(3) for match in _VAR_RE.finditer(text))


def references(text: str, names: set[str] | frozenset[str]) -> bool:
    """Whether ``text`` mentions ``$NAME`` or ``${NAME...}`` for any of ``names``."""
    return any((match.group(1) or match.group(3)) in names for match in _VAR_RE.finditer(text))


def instruction_text(ins: Instruction) -> str:
    """Everything an instruction says, heredoc bodies included, for variable references."""
    return ins.rest + "".join(h.body for h in ins.heredocs)


def run_script(ins: Instruction) -> tuple[str, bool]:
    """The shell text a RUN executes and whether it really is shell (not python, not data)."""
    if ins.exec_form is not None:
        form = list(ins.exec_form)
        shell = len(form) >= 3 and posixpath.basename(form[0]) in _SHELLS
        if shell and form[1].startswith("-") and "c" in form[1]:
            return form[2], True
        return " ".join(shlex.quote(word) for word in form), True
    if not ins.heredocs:
        return ins.args, True
    line = " ".join(w for w in raw_words(ins.args) if not _HEREDOC_WORD_RE.match(w))
    words = shell_words(line)
    if words and posixpath.basename(words[0]) not in _SHELLS:
        return line, True  # the heredoc is data fed to a program (cat <<EOF > file)
    body = ins.heredocs[0].body
    first = body.split("\n", 1)[0]
    if first.startswith("#!"):
        parts = first[2:].split()
        if len(parts) > 1 and posixpath.basename(parts[0]) == "env":
            parts = [p for p in parts[1:] if not p.startswith("-")] or [""]
        if not parts or posixpath.basename(parts[0]) not in _SHELLS:
            return body, False
    return body, True


def run_commands(ins: Instruction) -> tuple[list[Command], bool]:
    """Simple commands of a RUN and whether the script was shell we could read."""
    script, is_shell = run_script(ins)
    if not is_shell:
        return [], False
    return split_commands(script), True
