"""Redis targets: credentials from the secrets file, ``/probe`` targets.

Credentials are looked up by target name or address and handed to the client; they never go
into a URL that is logged, a label, or an error message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from ...config import ConfigError
from ...fields import redact, safe_yaml, yaml_error
from ...http.allowlist import AllowList
from .settings import (
    RedisSettings,
    RedisTarget,
    TargetAddressError,
    address_label,
    split_redis_address,
)


class UnknownTarget(LookupError):
    """``/probe`` named something that is neither a configured target nor an allowed address."""


def load_secrets(path: Path | None) -> dict[str, dict[str, str]]:
    """Read ``{target: password | {username, password}}``; keys are names or addresses."""
    if path is None:
        return {}
    import yaml  # only with a secrets file

    try:
        data = safe_yaml(path.read_text()) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        # yaml_error: the parser's own text quotes the line, and this file holds passwords.
        why = exc.strerror if isinstance(exc, OSError) else yaml_error(exc)
        raise ConfigError(f"redis.secrets_file {str(path)!r} cannot be read: {why}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"redis.secrets_file {str(path)!r}: expected a mapping of target -> "
                          "password or {username, password}")
    secrets: dict[str, dict[str, str]] = {}
    for key, value in data.items():
        entry = {"password": value} if isinstance(value, str) else value
        if not isinstance(entry, dict) or set(entry) - {"username", "password"}:
            raise ConfigError(f"redis.secrets_file {str(path)!r}: entry {key!r} must be a password "
                              "string or a mapping with username and/or password")
        secrets[_secret_key(str(key))] = {k: str(v) for k, v in entry.items()}
    return secrets


def _secret_key(key: str) -> str:
    """Addresses are compared in one normal form (``redis://h:p`` and ``h:p`` are the same)."""
    try:
        return address_label(split_redis_address(key)[0]) if (":" in key or "/" in key) else key
    except TargetAddressError:
        return key


def with_secrets(target: RedisTarget, secrets: dict[str, dict[str, str]]) -> RedisTarget:
    """The target with credentials from the secrets file filled in where the config has none."""
    entry = secrets.get(target.name or "") or secrets.get(address_label(target.url))
    if not entry or target.password is not None or target.password_file is not None:
        return target
    update: dict[str, Any] = {"password": SecretStr(entry["password"])} if "password" in entry \
        else {}
    if "username" in entry and not target.username:
        update["username"] = entry["username"]
    return target.model_copy(update=update)


def resolve_probe_target(
    query: str, settings: RedisSettings, secrets: dict[str, dict[str, str]], allow: AllowList
) -> tuple[RedisTarget, bool]:
    """Map ``/probe?target=`` to a target; return it and whether it is a configured one.

    Raises ``TargetAddressError`` for a malformed address (or one carrying credentials) and
    ``UnknownTarget`` for a name that is not configured or an address ``allow`` does not list.
    """
    by_name = {t.name: t for t in settings.targets}
    if not query.strip():
        raise TargetAddressError("the target is empty; pass a configured name or redis://host:port")
    if query in by_name:
        return with_secrets(by_name[query], secrets), True
    if "://" not in query and ":" not in query:
        known = ", ".join(sorted(n for n in by_name if n)) or "none"
        raise UnknownTarget(
            f"unknown target {redact(query)!r}: not a configured target name (configured: "
            f"{known}); pass a configured name or an address like redis://host:6379"
        )
    url, username, password = split_redis_address(query)
    if username or password:
        raise TargetAddressError(
            "credentials are not accepted in the query string; put them in redis.secrets_file "
            "(keyed by the target address) and probe the bare address"
        )
    for target in settings.targets:
        if target.url == url:
            return with_secrets(target, secrets), True
    if url.startswith("unix://"):
        raise UnknownTarget("unix:// sockets can be probed only as configured targets")
    host = urlsplit(url).hostname or ""
    if not allow.permits(host):
        raise UnknownTarget(
            f"{address_label(url)!r} is not a configured target and probe.allow does not list "
            f"its host (probe.allow: {allow.describe()}); configure it as a target, or add the "
            "host or its network to probe.allow")
    return with_secrets(RedisTarget(url=url), secrets), False
