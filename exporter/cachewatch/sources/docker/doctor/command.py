"""``cachewatch doctor``: from the command's arguments to its output and exit code.

Findings go to stdout as ``PATH:LINE: rule: message`` with the fix indented below (or JSON), so
editors, CI annotators and ``git apply`` take them as they are; everything else (warnings, the
ranking's summary) goes to stderr. The exit code says only whether something was found: build
history ranks the findings but never changes it, and history that cannot be read is one warning.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from .cost import History, describe, rank
from .dockerfile import parse
from .history import HistoryError, from_exporter, from_prometheus, valid_window
from .report import analyze, dockerignore_for, exit_code, to_dicts, to_text
from .wording import count

__all__ = ["DEFAULT_WINDOW", "Options", "UsageError", "run"]

DEFAULT_WINDOW = "7d"


class UsageError(Exception):
    """A mistake in the command line; the message names the fix (exit code 2)."""


@dataclass(frozen=True)
class Options:
    """The command's arguments, as given (``None``: not given)."""

    dockerfile: str = "Dockerfile"
    context: Path | None = None
    as_json: bool = False
    url: str | None = None
    prometheus: str | None = None
    image: str | None = None
    window: str | None = None
    buildkit_target: str | None = None


def _read(options: Options) -> tuple[str, str, Path, Path | None]:
    """(text, path to show, build context, Dockerfile path or None for stdin)."""
    if options.context is not None and not options.context.is_dir():
        raise UsageError(f"--context {str(options.context)!r} is not a folder: give the build "
                         "context, the folder `docker build` is given")
    if options.dockerfile == "-":
        return sys.stdin.read(), "-", options.context or Path.cwd(), None
    shown, path = options.dockerfile, Path(options.dockerfile)
    if path.is_dir():
        path = path / "Dockerfile"
        shown = str(path)
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise UsageError(f"no Dockerfile at {shown}: give its path, like `cachewatch doctor "
                         "path/to/Dockerfile` (or - to read it from stdin)") from None
    except OSError as exc:
        raise UsageError(f"cannot read {shown}: {exc.strerror or exc}") from None
    return text, shown, options.context or path.parent, path


def _context_ignore(context: Path) -> str | None:
    """The context's .dockerignore: what a Dockerfile read from stdin is built with."""
    try:
        return (context / ".dockerignore").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _check(options: Options) -> None:
    """Refuse option combinations that cannot mean anything."""
    if sum(bool(given) for given in (options.url, options.prometheus,
                                     options.buildkit_target)) > 1:
        raise UsageError("give --url (an exporter's counters), --prometheus (a window of them)"
                         " or --buildkit-target (a BuildKit daemon's own history), not several")
    if options.window is not None and not valid_window(options.window):
        raise UsageError(f"--window {options.window!r} is not a Prometheus duration: write it "
                         "like 7d, 24h or 90m")


def _image(options: Options, context: Path) -> str:
    """``--image``, or the build context folder's name (how compose names a project)."""
    if options.image:
        return options.image
    name = context.resolve().name.lower()
    if not name:
        raise UsageError("cannot name the image from the build context: pass --image, the name "
                         "its builds are counted under")
    return name


def _history(options: Options, context: Path, err: IO[str]) -> History | None:
    """The image's build history when asked for and readable; a warning line otherwise."""
    if not options.url and not options.prometheus and not options.buildkit_target:
        return None
    image = _image(options, context)
    try:
        if options.buildkit_target:
            from ..buildkit.doctor import from_daemon

            history = from_daemon(options.buildkit_target, image)
        elif options.prometheus:
            history = from_prometheus(options.prometheus, image,
                                      options.window or DEFAULT_WINDOW)
        else:
            if options.window is not None:
                print("cachewatch: note: --window needs --prometheus; the exporter's counters "
                      "are totals since it started counting", file=err)
            history = from_exporter(options.url or "", image)
    except HistoryError as exc:
        print(f"cachewatch: warning: {exc}; findings are not ranked", file=err)
        return None
    if history.builds <= 0:
        others = [name for name in history.images if name != image]
        known = (f" (there are builds of {', '.join(others[:10])}"
                 f"{', ...' if len(others) > 10 else ''}: pass --image)") if others else ""
        print(f"cachewatch: warning: no builds of {image} {history.window}{known}; findings "
              "are not ranked", file=err)
        return None
    return history


def run(options: Options, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Analyse the Dockerfile, rank by history if asked, print; the exit code (0 or 1)."""
    out = out or sys.stdout
    err = err or sys.stderr
    _check(options)
    text, shown, context, path = _read(options)
    ignore = dockerignore_for(path, context) if path else _context_ignore(context)
    findings = analyze(text, shown, ignore, vcs_in_context=(context / ".git").exists())
    history = _history(options, context, err) if findings else None
    asked = bool(options.url or options.prometheus or options.buildkit_target)
    if history is not None:
        ranked = rank(findings, parse(text), history)
        findings = [finding for finding, _ in ranked]
        costs = [cost for _, cost in ranked]
    else:
        costs = [None] * len(findings)
    if options.as_json:
        rows = to_dicts(findings, shown)
        if asked:
            for row, cost in zip(rows, costs, strict=True):
                row["cost"] = None if cost is None or history is None else {
                    **asdict(cost), "instructions": list(cost.instructions),
                    "image": history.image, "builds": round(history.builds),
                    "window": history.window}
        out.write(json.dumps(rows, indent=2) + "\n")
    else:
        notes = [describe(f, c, history) if c is not None and history is not None else None
                 for f, c in zip(findings, costs, strict=True)]
        out.write(to_text(findings, shown, notes))
    if history is not None:
        print(f"cachewatch: {count(len(findings), 'finding')} ranked by what they cost in "
              f"{count(round(history.builds), 'build')} of {history.image} "
              f"{history.window}", file=err)
    elif not findings:
        print(f"cachewatch: {shown}: no cache problems found", file=err)
    return exit_code(findings)
