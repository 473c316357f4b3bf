"""Building blocks every source's settings model uses: durations, flags, file checks, redaction.

A setting is defined once, as a pydantic field; ``flag()`` attaches its command-line spelling and
how its default reads in docs, so the CLI, the docs' table and the error messages are all derived
from that one definition (``config.setting_rows``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> Any:
    """Accept Prometheus-style durations (``500ms``, ``2s``, ``1m``, ``7d``) or plain seconds."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration; write it like 2s, 500ms or 1.5")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


MIN_SECONDS = 0.001
"""No duration is shorter than this, except 0 where a setting takes 0 for "off": an interval
of a nanosecond would spin a core, a timeout of one would fail every read."""


def _not_below_floor(value: float) -> float:
    if 0 < value < MIN_SECONDS:
        raise ValueError(f"{value:g}s is below the floor of {MIN_SECONDS * 1000:g}ms for any "
                         "duration (0 turns off what can be turned off)")
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_not_below_floor)]


def shape(annotation: Any, metadata: list[Any], name: str) -> str:
    """How a setting's value is written, for ``--help`` (``DURATION``, ``BOOL``, ``a|b``):
    what a user must type, where the Python type (``float``, ``str``) would say nothing."""
    if any(getattr(item, "func", None) is parse_duration for item in metadata):
        return "DURATION"
    if get_origin(annotation) is Literal:
        return "|".join(str(arg) for arg in get_args(annotation))
    kinds = {arg for arg in get_args(annotation) if arg is not type(None)} or {annotation}
    if bool in kinds:
        return "BOOL"
    if int in kinds:
        return "PORT" if name == "port" else "N"
    if Path in kinds:
        return "FILE"
    return "URL" if name.endswith("url") else "TEXT"


def flag(name: str | None = None, *, default: str | None = None, metavar: str | None = None,
         help: str | None = None) -> dict[str, Any]:
    """Field metadata (``json_schema_extra``): the setting's flag and its documented default.

    ``name`` is the long flag (``--state-url``), or ``None`` for a setting with only an env
    var and a YAML key; ``default`` is how the default reads in ``--help`` and the docs when its
    Python value says it badly; ``help`` is a shorter text for ``--help`` than the description.
    """
    meta: dict[str, Any] = {}
    if name:
        meta["flag"] = name
    if default is not None:
        meta["default_doc"] = default
    if metavar:
        meta["metavar"] = metavar
    if help:
        meta["flag_help"] = help
    return meta


def readable_file(path: Path | None) -> Path | None:
    """A configured file must exist at start-up: a typo stops the exporter, not a later read."""
    if path is not None and not path.is_file():
        raise ValueError(f"file {str(path)!r} does not exist or is not a file")
    return path


def redact(raw: str) -> str:
    """The text with any URL credentials replaced, safe for error messages and logs.

    Everything between ``://`` and the last ``@`` goes: passwords may hold ``/``, ``:`` or ``@``.
    Without a scheme, ``user:password@host`` loses everything before its last ``@`` too.
    """
    out = []
    for part in re.split(r"(\w+://)", raw):
        if "@" in part and out and out[-1].endswith("://"):
            part = "***@" + part[part.rfind("@") + 1:]
        out.append(part)
    return re.sub(r"[^\s'\"]+", _schemeless, "".join(out))


def _schemeless(match: re.Match[str]) -> str:
    """``user:password@host`` (no scheme) -> ``***@host``; any other word unchanged."""
    word = match.group(0)
    userinfo, at, host = word.rpartition("@")
    if not at or "://" in word or ":" not in userinfo:
        return word
    return "***@" + host


def yaml_error(exc: Exception) -> str:
    """A YAML error without the excerpt of the file that its own text quotes (which may hold a
    password): what is wrong, and where."""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def safe_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses aliases (``*name``): a kilobyte of nested aliases (the
    "billion laughs") expands into billions of values once something walks the result, so a
    file that uses them fails at once, naming the line, instead of running for minutes."""
    import yaml

    class _NoAliases(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, "aliases (*name) are not allowed in this file; write the "
                    "value out", event.start_mark)
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=_NoAliases)


def named_target(data: Any, field: str, name_excludes: str = "/") -> Any:
    """A bare ``[NAME=]ADDRESS`` string (a flag or an env list item) -> ``{"name", field}``, as
    every target model accepts it; anything else is left to the model. The part before ``=`` is
    a name only if it has none of ``name_excludes`` (a URL's ``://`` or a path's ``/``, a
    ``host:port``'s ``:``), so an address holding ``=`` stays whole."""
    if not isinstance(data, str):
        return data
    name, sep, address = data.partition("=")
    if sep and not any(char in name for char in name_excludes):
        return {"name": name, field: address}
    return {field: data}
