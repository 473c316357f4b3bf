"""One settings model for the whole exporter: flags > ``CACHEWATCH_*`` env vars > YAML file.

pydantic-settings merges the three sources; a bad value stops start-up with a ``ConfigError``
that names the setting in all three spellings and says how to fix it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    YamlConfigSettingsSource,
)

from .defaults import DEFAULT_PORT, ENV_PREFIX

__all__ = ["DEFAULT_PORT", "ENV_PREFIX", "ConfigError", "Settings", "load_settings"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> Any:
    """Accept Prometheus-style durations (``500ms``, ``2s``, ``1m``) as well as plain seconds."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration; write it like 2s, 500ms or 1.5")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration)]


class TargetAddressError(ValueError):
    """A Redis target address that cannot be used; the message says why and what to write."""


def split_redis_address(raw: str) -> tuple[str, str | None, str | None]:
    """Normalise ``host:port``, ``redis://``, ``rediss://``, ``unix://`` to a credential-free URL.

    Returns ``(url, username, password)``: credentials found in the URL are taken out so that the
    URL can be logged and used as a label; callers decide whether credentials there are allowed.
    """
    text = raw.strip()
    if not text:
        raise TargetAddressError("the target is empty; write redis://host:port")
    if "://" not in text:
        text = "redis://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        # The parser's own message may quote the password; it is never shown.
        raise TargetAddressError(
            f"{_redact(raw)!r} is not a valid address; write redis://host:port") from None
    scheme = parts.scheme.lower()
    if scheme == "unix":
        if not parts.path:
            raise TargetAddressError("a unix:// target needs a socket path, like unix:///run/redis.sock")
        return f"unix://{parts.path}", parts.username or None, parts.password or None
    if scheme not in ("redis", "rediss"):
        raise TargetAddressError(
            f"{_redact(raw)!r} has scheme {parts.scheme!r}; use redis://, rediss:// (TLS) or unix://"
        )
    if not parts.hostname:
        raise TargetAddressError(f"{_redact(raw)!r} has no host; write {scheme}://host:port")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise TargetAddressError(f"{_redact(raw)!r}: the path must be a database number, like /0")
    url = f"{scheme}://{host}:{port or 6379}" + (f"/{db}" if db and db != "0" else "")
    return url, parts.username or None, parts.password or None


def _redact(raw: str) -> str:
    """The text with any URL credentials replaced, safe for error messages and logs.

    Everything between ``://`` and the last ``@`` goes: passwords may hold ``/``, ``:`` or ``@``.
    """
    out = []
    for part in re.split(r"(\w+://)", raw):
        if "@" in part and out and out[-1].endswith("://"):
            part = "***@" + part[part.rfind("@") + 1:]
        out.append(part)
    return "".join(out)


class RedisTarget(BaseModel):
    """One Redis server to read. Credentials stay out of the URL, labels and logs."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="redis://host:port[/db], rediss://host:port (TLS) or unix:///path")
    name: str | None = Field(
        default=None, description="The `cache` label value; defaults to host:port.")
    username: str | None = Field(default=None, description="ACL user (Redis 6+).")
    password: SecretStr | None = Field(default=None, description="Prefer password_file.")
    password_file: Path | None = Field(
        default=None, description="File holding the password (trailing newline ignored).")
    tls_ca_file: Path | None = Field(default=None, description="CA bundle to verify the server.")
    tls_cert_file: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    tls_key_file: Path | None = Field(default=None, description="Client key (mutual TLS).")
    tls_insecure_skip_verify: bool = Field(
        default=False, description="Do not verify the server certificate (testing only).")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        """Allow a bare ``[name=]url`` string wherever a target is expected (flags, env)."""
        if isinstance(data, str):
            name, sep, url = data.partition("=")
            if sep and "://" not in name and "/" not in name:
                return {"name": name, "url": url}
            return {"url": data}
        return data

    @model_validator(mode="after")
    def _normalise(self) -> RedisTarget:
        url, username, password = split_redis_address(self.url)
        self.url = url
        if username and not self.username:
            self.username = username
        if password and self.password is None:
            self.password = SecretStr(password)
        if self.password is not None and self.password_file is not None:
            raise ValueError("set password or password_file, not both")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together; set both or neither")
        if not self.name:
            self.name = address_label(self.url)
        return self

    @field_validator("password_file", "tls_ca_file", "tls_cert_file", "tls_key_file")
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"file {str(path)!r} does not exist or is not a file")
        return path

    @property
    def tls(self) -> bool:
        """Whether the connection uses TLS (``rediss://``)."""
        return self.url.startswith("rediss://")


def address_label(url: str) -> str:
    """``host:port`` (or the socket path) of a normalised URL: the default ``cache`` label."""
    return url.split("://", 1)[1]


class RedisSettings(BaseModel):
    """The Redis collector: targets, timeouts and the active latency probe."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    targets: list[RedisTarget] = Field(
        default_factory=lambda: [RedisTarget(url="redis://127.0.0.1:6379")],
        description="Servers read on every /metrics scrape.",
    )
    timeout: Seconds = Field(
        default=2.0, gt=0, le=60,
        description="Per-target deadline; a target slower than this reports up=0.")
    probe_interval: Seconds = Field(
        default=1.0, ge=0, le=3600,
        description="Seconds between active latency probes (PING) per target; 0 turns them off.")
    secrets_file: Path | None = Field(
        default=None,
        description="YAML/JSON map of target name or address -> password or {username, password}.",
    )
    allow_unlisted_probe_targets: bool = Field(
        default=True,
        description="Let /probe read addresses that are not configured targets.")

    @field_validator("secrets_file")
    @classmethod
    def _secrets_readable(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"file {str(path)!r} does not exist or is not a file")
        return path

    @model_validator(mode="after")
    def _unique_names(self) -> RedisSettings:
        seen: set[str] = set()
        for target in self.targets:
            if target.name == "other":
                raise ValueError("the target name 'other' is reserved for folded overflow series")
            if target.name in seen:
                raise ValueError(f"two targets are named {target.name!r}; give each a unique name")
            seen.add(target.name or "")
        return self


class BuildSettings(BaseModel):
    """Build ingestion: ``POST /api/v1/builds`` and what it may hold."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    token: SecretStr | None = Field(
        default=None, description="Bearer token that POST /api/v1/builds requires, if set.")
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024,
        description="Largest request body accepted (a whole build log); larger gets 413.")
    max_images: int = Field(
        default=200, ge=1, description="Distinct image/target label values; more fold into other.")
    max_cache_busters: int = Field(
        default=500, ge=1, description="Distinct (image, instruction) pairs; more fold into other.")


class AppCacheSettings(BaseModel):
    """In-process caches pushed to ``POST /api/v1/caches`` (Caffeine- or Micrometer-shaped)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    token: SecretStr | None = Field(
        default=None, description="Bearer token that POST /api/v1/caches requires, if set.")
    instance_ttl: Seconds = Field(
        default=300.0, gt=0, le=86400,
        description="An instance that has not pushed for this long is dropped with its series.")
    max_caches: int = Field(
        default=200, ge=1, description="Distinct cache names; more fold into `other`.")
    max_instances: int = Field(
        default=1000, ge=1, description="Instances tracked at once; pushes from more are refused.")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024,
                                description="Largest push body accepted; larger gets 413.")


class RegistrySettings(BaseModel):
    """Registry notification receivers: Distribution (``/webhooks/registry``) and Harbor."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    token: SecretStr | None = Field(
        default=None, description="Bearer token the webhooks require (the registry's endpoint"
        " `headers` can send it).")
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024,
                                description="Largest envelope accepted; larger gets 413.")
    max_repositories: int = Field(
        default=500, ge=1, description="Distinct repository label values; more fold into other.")
    max_registries: int = Field(default=20, ge=1, description="Distinct registry label values.")
    tag_label: bool = Field(default=False,
                            description="Add the tag to image pull/push series (more series).")
    dedup_window: int = Field(default=100_000, ge=100,
                              description="Event ids remembered to drop redelivered events.")


class ProxyTarget(BaseModel):
    """A pull-through cache registry's debug endpoint (``http.debug.addr``)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Base URL of the debug server, like http://127.0.0.1:5001")
    name: str | None = Field(default=None, description="The `registry` label; default host:port.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if isinstance(data, str):
            name, sep, url = data.partition("=")
            return {"name": name, "url": url} if sep and "://" not in name else {"url": data}
        return data

    @model_validator(mode="after")
    def _check(self) -> ProxyTarget:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{self.url!r} is not an http(s) URL; write http://host:port")
        self.url = self.url.rstrip("/")
        self.name = self.name or parts.netloc
        return self


class RegistryProxySettings(BaseModel):
    """Pull-through cache hit rate read from registries' debug endpoints."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = Field(default=None, description="Default: on when targets are given.")
    targets: list[ProxyTarget] = Field(default_factory=list)
    timeout: Seconds = Field(default=2.0, gt=0, le=60)

    @model_validator(mode="after")
    def _default_enabled(self) -> RegistryProxySettings:
        if self.enabled is None:
            self.enabled = bool(self.targets)
        return self


class DockerSettings(BaseModel):
    """The Docker Engine collector (read-only API calls) and its events watcher."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=False, description="Off by default: it needs access to the Docker socket.")
    host: str = Field(
        default_factory=lambda: os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
        description="Engine address; defaults to $DOCKER_HOST, else the standard socket.")
    name: str = Field(default="local", description="The `host` label value for this engine.")
    timeout: Seconds = Field(default=5.0, gt=0, le=60,
                             description="Deadline for /system/df; big hosts need a few seconds.")
    events: bool = Field(default=True, description="Count image events from the events stream.")


LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["logfmt", "json"]


class Settings(BaseSettings):
    """Everything ``cachewatch serve`` can be told."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    listen_address: str = Field(default="0.0.0.0", description="Address to serve HTTP on.")
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="Port to serve HTTP on.")
    log_level: LogLevel = "info"
    log_format: LogFormat = "logfmt"
    redis: RedisSettings = Field(default_factory=RedisSettings)
    builds: BuildSettings = Field(default_factory=BuildSettings)
    docker: DockerSettings = Field(default_factory=DockerSettings)
    app: AppCacheSettings = Field(default_factory=AppCacheSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    registry_proxy: RegistryProxySettings = Field(default_factory=RegistryProxySettings)

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
        if cls._yaml_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=cls._yaml_file))
        return tuple(sources)


class ConfigError(Exception):
    """Start-up cannot go on; the message names the setting and the fix."""


def load_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Build the settings from flags (``None`` means not given), env vars and a YAML file."""
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(
                f"config file {str(config_file)!r} not found: fix --config / {ENV_PREFIX}CONFIG,"
                " or leave it out to use flags and env vars only"
            )
        _check_yaml(config_file)
    overrides = _nest({k: v for k, v in flags.items() if v is not None})
    Settings._yaml_file = config_file
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, config_file)) from None
    except SettingsError as exc:  # an env var that should hold JSON does not
        raise ConfigError(
            f"invalid configuration: {_redact(str(exc))}; variables holding lists or mappings"
            f' take JSON, like {ENV_PREFIX}REDIS__TARGETS=\'["redis://host:6379"]\'') from None
    finally:
        Settings._yaml_file = None


def _check_yaml(path: Path) -> None:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of settings at the top")


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"redis.timeout": 1}`` -> ``{"redis": {"timeout": 1}}`` so flags deep-merge with files."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


# Settings that have a command-line flag (the CLI test checks each one exists in --help).
FLAGS: dict[str, str] = {
    "listen_address": "--listen-address",
    "port": "--port",
    "log_level": "--log-level",
    "log_format": "--log-format",
    "redis.targets": "--redis-target",
    "redis.timeout": "--redis-timeout",
    "redis.probe_interval": "--redis-probe-interval",
    "redis.secrets_file": "--redis-secrets-file",
    "redis.enabled": "--enable-collector/--disable-collector redis",
    "builds.token": "--builds-token",
    "docker.host": "--docker-host",
}


def _explain(exc: ValidationError, config_file: Path | None) -> str:
    lines = ["invalid configuration:"]
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        dotted = ".".join(loc) or "(top level)"
        settable = [p for p in loc if not p.isdigit()]
        env = ENV_PREFIX + "__".join(settable[:2]).upper()
        flag = next((f for key, f in FLAGS.items() if ".".join(settable).startswith(key)), None)
        where = (f"flag {flag}, " if flag else "") + f"env {env}"
        where += f", or {config_file}" if config_file else ", or the YAML file (--config)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting (a typo?); see `cachewatch serve --help` or the README"
        elif "input" in error and error["type"] not in ("missing",) and "password" not in dotted:
            message += f" (got {_short(error['input'])})"
        lines.append(f"  {dotted}: {message}  [set by {where}]")
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict) else "a mapping"
    return _redact(text if len(text) < 80 else text[:77] + "...")
