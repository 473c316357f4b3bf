"""Loading and merging settings: flags > ``CACHEWATCH_*`` env vars > YAML file.

The core settings (listen address, port, logging) live here; every source brings its own sections
(``cachewatch.sources``), and ``Settings`` is assembled from both. pydantic-settings merges the
three sources; a bad value stops start-up with a ``ConfigError`` that names the setting in all
three spellings and says how to fix it. Flags, the docs' table and those errors are derived from
the same field definitions (``setting_rows``), so a setting is defined exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    YamlConfigSettingsSource,
)

from .defaults import DEFAULT_PORT, ENV_PREFIX
from .fields import (
    Seconds,
    flag,
    parse_duration,
    readable_file,
    redact,
    safe_yaml,
    shape,
    yaml_error,
)
from .http.allowlist import AllowList
from .sources import sections
from .state.settings import StateSettings
from .status.settings import StatusSettings

__all__ = ["DEFAULT_PORT", "ENV_PREFIX", "ConfigError", "Settings", "load_settings",
           "parse_duration"]

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["logfmt", "json"]


class WebSettings(BaseModel):
    """The exporter's own HTTP server: TLS and basic auth (a web config file) and its limits."""

    model_config = ConfigDict(extra="forbid")

    config_file: Path | None = Field(
        default=None,
        description="web configuration file in the Prometheus exporter-toolkit format: TLS "
        "(`tls_server_config`) and basic auth (`basic_auth_users`) for every endpoint; see "
        "[Security](security.md)",
        json_schema_extra=flag("--web.config.file", metavar="FILE",
                               help="TLS and basic auth, in the exporter-toolkit web config "
                               "format (the file node_exporter takes)"))
    header_timeout: Seconds = Field(
        default=10.0, gt=0, le=600,
        description="a request line and headers must arrive within this long of the connection "
        "(or of the request's first byte); slower clients are disconnected",
        json_schema_extra=flag(default="10s"))
    body_timeout: Seconds = Field(
        default=60.0, gt=0, le=3600,
        description="a request body must arrive within this long of its headers",
        json_schema_extra=flag(default="60s"))
    keepalive_timeout: Seconds = Field(
        default=5.0, gt=0, le=600,
        description="an idle keep-alive connection is closed after this long",
        json_schema_extra=flag(default="5s"))
    max_connections: int = Field(
        default=1024, ge=16, le=1_000_000,
        description="open connections at most; at the cap the connection that has waited "
        "longest without sending a request is closed first; lowered to fit the open-file limit")
    max_header_bytes: int = Field(
        default=65536, ge=4096, le=1 << 24,
        description="a request line and headers larger than this get `431`")
    max_inflight_body_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024 * 1024, le=1 << 34,
        description="request bodies every receiver together holds at once (read or being "
        "handled); a body that does not fit gets `503` and `Retry-After`")

    _file_readable = field_validator("config_file")(readable_file)


class ProbeSettings(BaseModel):
    """Who ``/probe`` may read besides the configured targets."""

    model_config = ConfigDict(extra="forbid")

    allow: list[str] = Field(
        default_factory=list,
        description="hosts `/probe` may read besides configured targets: host patterns "
        "(`*.cache.internal`) and networks (`10.0.0.0/8`); `*` allows any host; empty: "
        "configured targets only",
        json_schema_extra=flag("--probe-allow", default="[] (configured targets only)",
                               metavar="HOST_OR_CIDR",
                               help="Host pattern or network /probe may read besides "
                               "configured targets"))

    @field_validator("allow")
    @classmethod
    def _valid_entries(cls, entries: list[str]) -> list[str]:
        AllowList(entries)  # raises ValueError naming the bad entry
        return entries

    def allow_list(self) -> AllowList:
        """The parsed list."""
        return AllowList(self.allow)


class CoreSettings(BaseSettings):
    """What ``cachewatch serve`` needs whatever sources are on."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    listen_address: str = Field(default="0.0.0.0", description="address to serve on",
                                json_schema_extra=flag("--listen-address", metavar="ADDRESS"))
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="port to serve on",
                      json_schema_extra=flag("--port"))
    log_level: LogLevel = Field(default="info",
                                description="`debug`, `info`, `warning`, `error`",
                                json_schema_extra=flag("--log-level"))
    log_format: LogFormat = Field(default="logfmt", description="`logfmt` or `json` (stderr)",
                                  json_schema_extra=flag("--log-format"))
    web: WebSettings = Field(default_factory=WebSettings)
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    state: StateSettings = Field(default_factory=StateSettings,
                                 description="durable state (counters, de-duplication ids)")
    status: StatusSettings = Field(default_factory=StatusSettings,
                                   description="the status page's goals")

    # Set by load_settings() for the duration of one construction; read by the YAML source.
    _yaml_file: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (passed as init kwargs) beat env vars, which beat the YAML file."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if CoreSettings._yaml_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls,
                                                    yaml_file=CoreSettings._yaml_file))
        return tuple(sources)


# Everything ``cachewatch serve`` can be told: the core plus one section per registered source.
Settings: type[CoreSettings] = create_model(  # type: ignore[call-overload]
    "Settings",
    __base__=CoreSettings,
    __doc__="Everything ``cachewatch serve`` can be told.",
    **{name: (section.settings, Field(default_factory=section.settings))
       for name, section in sections().items()},
)


class ConfigError(Exception):
    """Start-up cannot go on; the message names the setting and the fix."""


@dataclass(frozen=True)
class SettingRow:
    """One setting as users see it: its YAML key, flag, env var, documented default, meaning."""

    key: str
    flag: str | None
    env: str
    default: str
    meaning: str
    repeatable: bool
    metavar: str | None
    # How the value is written in ``--help``: the declared metavar, else one from the type.
    shape: str
    help: str


def setting_rows() -> Iterator[SettingRow]:
    """Every top-level and per-section setting, in the order they are documented."""
    for name, info in CoreSettings.model_fields.items():
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            defaults = nested()
            for key, inner in nested.model_fields.items():
                yield _row(f"{name}.{key}", inner, getattr(defaults, key))
        else:
            yield _row(name, info, info.default)
    for section_name, section in sections().items():
        defaults = section.settings()
        for name, info in section.settings.model_fields.items():
            yield _row(f"{section_name}.{name}", info, getattr(defaults, name),
                       section=section_name)


def _row(key: str, info: Any, default: Any, section: str | None = None) -> SettingRow:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    flag_name = extra.get("flag")
    if key.endswith(".enabled"):
        flag_name = f"--enable-collector {section} / --disable-collector {section}"
    env = ENV_PREFIX + key.replace(".", "__").upper()
    repeatable = isinstance(default, list)
    return SettingRow(
        key=key, flag=flag_name, env=env, default=extra.get("default_doc") or _show(default),
        meaning=info.description or "", repeatable=repeatable, metavar=extra.get("metavar"),
        shape=extra.get("metavar")
        or shape(info.annotation, info.metadata, key.rsplit(".", 1)[-1]),
        help=extra.get("flag_help") or (info.description or "").capitalize())


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, BaseModel):
        return "-"
    return str(value)


def flag_of(key: str) -> str | None:
    """The flag that sets ``key`` (dotted), if it has one; for error messages."""
    return next((row.flag for row in setting_rows()
                 if key == row.key or key.startswith(row.key + ".")), None)


def load_settings(config_file: Path | None = None, **flags: Any) -> CoreSettings:
    """Build the settings from flags (``None`` means not given), env vars and a YAML file."""
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(
                f"config file {str(config_file)!r} not found: fix --config / {ENV_PREFIX}CONFIG,"
                " or leave it out to use flags and env vars only"
            )
        _check_yaml(config_file)
    overrides = _nest({k: v for k, v in flags.items() if v is not None})
    CoreSettings._yaml_file = config_file
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, config_file)) from None
    except SettingsError as exc:  # an env var that should hold JSON does not
        raise ConfigError(_explain_env(str(exc))) from None
    finally:
        CoreSettings._yaml_file = None


def _check_yaml(path: Path) -> None:
    import yaml

    try:
        data = safe_yaml(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        # Only the position: the YAML error's own text quotes the line, which may hold a secret.
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {yaml_error(exc)}"
                          ) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of settings at the top")


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"state.url": "x"}`` -> ``{"state": {"url": "x"}}`` so flags deep-merge with files."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _explain(exc: ValidationError, config_file: Path | None) -> str:
    """One line per wrong value: the setting, what is wrong in plain words, what was given
    (unless it may be a secret), and every place it can be set."""
    lines = ["invalid configuration:"]
    yaml_where = f"or {config_file}" if config_file else "or the YAML file (--config)"
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        dotted = ".".join(loc) or "(top level)"
        settable = [p for p in loc if not p.isdigit()]
        message = _plain(error)
        if len(settable) == 1 and settable[0] in sections():  # a check over the whole section
            section = settable[0]
            where = (f"flags --{section.replace('_', '-')}-*, env "
                     f"{ENV_PREFIX}{section.upper()}__*, {yaml_where}")
        else:
            env = ENV_PREFIX + "__".join(settable[:2]).upper()
            flag_name = flag_of(".".join(settable)) if settable else None
            where = (f"flag {flag_name}, " if flag_name else "") + f"env {env}, {yaml_where}"
            if error["type"] not in ("missing", "extra_forbidden") and "input" in error \
                    and not any(word in dotted for word in _SECRET_WORDS):
                message += f" (got {_short(error['input'])})"
        lines.append(f"  {dotted}: {message}  [set by {where}]")
    return "\n".join(lines)


# pydantic's wording ("Input should be a valid integer, unable to parse string as an integer")
# in the words of a configuration error.
_PLAIN = {
    "int_parsing": "must be a whole number", "int_type": "must be a whole number",
    "int_from_float": "must be a whole number", "float_parsing": "must be a number",
    "float_type": "must be a number", "bool_parsing": "must be true or false",
    "bool_type": "must be true or false", "string_type": "must be text",
    "list_type": "must be a list", "dict_type": "must be a mapping of settings",
    "model_type": "must be a mapping of settings", "missing": "is required",
    "extra_forbidden": "unknown setting (a typo?); see `cachewatch serve --help` or the "
                       "configuration reference (docs/configuration.md)",
}
_BOUNDS = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "more than"),
           "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than"),
           "too_long": ("max_length", "at most {} items long"),
           "too_short": ("min_length", "at least {} items long"),
           "string_too_long": ("max_length", "at most {} characters long"),
           "string_too_short": ("min_length", "at least {} characters long")}


def _plain(error: Any) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    if kind in _PLAIN:
        return _PLAIN[kind]
    if kind in _BOUNDS and _BOUNDS[kind][0] in context:
        key, words = _BOUNDS[kind]
        bound = context[key]
        return "must be " + (words.format(bound) if "{}" in words else f"{words} {bound}")
    if kind == "literal_error" and "expected" in context:
        return f"must be {context['expected']}"
    return str(error["msg"]).removeprefix("Value error, ")


def _explain_env(text: str) -> str:
    """An env var holding a list or a mapping that is not JSON: name it (pydantic-settings
    names only the section) and show what to write."""
    import json
    import os

    section = text.split('field "', 1)[-1].split('"', 1)[0].upper()
    lists = {row.env for row in setting_rows() if row.repeatable}
    broken = []
    for name, value in sorted(os.environ.items()):
        if name == ENV_PREFIX + section or (name in lists and name.startswith(
                f"{ENV_PREFIX}{section}__")):
            try:
                json.loads(value)
            except ValueError:
                broken.append(name)
    if not broken:
        return (f"invalid configuration: a {ENV_PREFIX}{section}__* variable is not valid JSON; "
                "variables holding lists or mappings take JSON")
    name = broken[0]
    example = "'{\"timeout\": \"2s\"}'" if name == ENV_PREFIX + section else \
        "'[\"first\", \"second\"]'"
    return (f"invalid configuration: {name} is not valid JSON; variables holding lists or "
            f"mappings take JSON, like {name}={example}")


# Settings whose values are never repeated in an error message.
_SECRET_WORDS = ("password", "token", "secret", "key")


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict) else "a mapping"
    return redact(text if len(text) < 80 else text[:77] + "...")


def settings_table() -> str:
    """docs/configuration.md's reference table (``make docs``), from the settings models."""
    lines = ["| YAML key | flag | env var | default | meaning |", "|---|---|---|---|---|"]
    for row in setting_rows():
        if row.flag is None:
            flag_text = "–"
        elif " / " in row.flag:
            flag_text = " / ".join(f"`{part}`" for part in row.flag.split(" / "))
        else:
            flag_text = f"`{row.flag}{' ' + row.metavar if row.metavar else ''}`"
            flag_text += " (repeat)" if row.repeatable else ""
        env = f"`{row.env}`" + (" (JSON list)" if row.repeatable else "")
        default = row.default if "`" in row.default or row.default == "none" \
            else f"`{row.default}`"
        lines.append(f"| `{row.key}` | {flag_text} | {env} | {default} | {row.meaning} |")
    return "\n".join(lines) + "\n"
