"""The Redis source's settings: targets, credentials, TLS, timeouts and the latency probe.

Credentials never stay in a target's URL: they are taken out at validation, so the URL can be
logged and used as a label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ...fields import Seconds, flag, named_target, readable_file, redact

# INFO (all sections cachewatch asks for) is a few kilobytes; this leaves a wide margin.
DEFAULT_MAX_REPLY_BYTES = 1 << 20


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
            f"{redact(raw)!r} is not a valid address; write redis://host:port") from None
    scheme = parts.scheme.lower()
    if scheme == "unix":
        if not parts.path:
            raise TargetAddressError("a unix:// target needs a socket path, like unix:///run/redis.sock")
        return f"unix://{parts.path}", parts.username or None, parts.password or None
    if scheme not in ("redis", "rediss"):
        raise TargetAddressError(
            f"{redact(raw)!r} has scheme {parts.scheme!r}; use redis://, rediss:// (TLS) or unix://"
        )
    if not parts.hostname:
        raise TargetAddressError(f"{redact(raw)!r} has no host; write {scheme}://host:port")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise TargetAddressError(f"{redact(raw)!r}: the path must be a database number, like /0")
    url = f"{scheme}://{host}:{port or 6379}" + (f"/{db}" if db and db != "0" else "")
    return url, parts.username or None, parts.password or None


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
        return named_target(data, "url")

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

    _files_readable = field_validator(
        "password_file", "tls_ca_file", "tls_cert_file", "tls_key_file")(readable_file)

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

    enabled: bool = Field(default=True, description="turn the Redis collector on or off")
    targets: list[RedisTarget] = Field(
        default_factory=lambda: [RedisTarget(url="redis://127.0.0.1:6379")],
        description="servers read on every scrape",
        json_schema_extra=flag(
            "--redis-target", default="[redis://127.0.0.1:6379]", metavar="[NAME=]URL",
            help="Redis to read, [NAME=]URL (redis://, rediss://, unix://)"),
    )
    timeout: Seconds = Field(
        default=2.0, gt=0, le=60,
        description='per-target deadline; slower targets report `up 0`, `reason="timeout"`',
        json_schema_extra=flag("--redis-timeout", default="2s",
                               help="Per-target deadline, like 2s or 500ms"))
    probe_interval: Seconds = Field(
        default=1.0, ge=0, le=3600,
        description="time between latency probes per target; `0` turns the probe off",
        json_schema_extra=flag("--redis-probe-interval", default="1s",
                               help="Time between latency probes (PING) per target; 0 turns"
                               " them off"))
    latency_histogram_commands: int = Field(
        default=10, ge=0, le=200,
        description="commands per target exported in `cachewatch_redis_command_latency_seconds`"
        " (Redis 7 `LATENCY HISTOGRAM`), the busiest first; later ones are folded into"
        " `command=\"other\"`; `0` does not ask for the histogram",
        json_schema_extra=flag("--redis-latency-histogram-commands", metavar="N",
                               help="Commands per target in the server-side latency histogram"
                               " (the rest as other); 0 turns it off"))
    secrets_file: Path | None = Field(
        default=None,
        description="credentials keyed by target name or address",
        json_schema_extra=flag(
            "--redis-secrets-file", metavar="FILE",
            help="YAML/JSON map of target name or address to password or {username, password}"),
    )
    max_reply_bytes: int = Field(
        default=DEFAULT_MAX_REPLY_BYTES, ge=64 << 10, le=1 << 30,
        description="a Redis reply larger than this ends the read (`reason=\"protocol\"`): "
        "a server, or anything answering at a probed address, cannot make the exporter buffer "
        "more; INFO is a few kilobytes")

    _secrets_readable = field_validator("secrets_file")(readable_file)

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: Any) -> Any:
        """Name the replacement of a removed setting instead of calling it a typo."""
        if isinstance(data, dict) and "allow_unlisted_probe_targets" in data:
            raise ValueError(
                "redis.allow_unlisted_probe_targets was removed: /probe now reads only "
                "configured targets unless probe.allow lists the hosts or networks it may read "
                "(--probe-allow, CACHEWATCH_PROBE__ALLOW, like [\"10.0.0.0/8\"], or [\"*\"] for "
                "any host); delete the old setting")
        return data

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
