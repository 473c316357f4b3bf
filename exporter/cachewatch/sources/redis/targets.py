"""Redis targets: credentials from the secrets file, client construction, failure reasons.

Credentials are looked up by target name or address and handed to the client; they never go
into a URL that is logged, a label, or an error message.
"""

from __future__ import annotations

import ssl
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
import yaml
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.credentials import CredentialProvider
from redis.exceptions import (
    AuthenticationWrongNumberOfArgsError,
    BusyLoadingError,
    NoPermissionError,
)
from redis.retry import Retry

from ...allowlist import AllowList
from ...config import ConfigError
from ...fields import redact, yaml_error
from .bounded import ReplyTooLarge, bounded_parser
from .settings import (
    DEFAULT_MAX_REPLY_BYTES,
    RedisSettings,
    RedisTarget,
    TargetAddressError,
    address_label,
    split_redis_address,
)

REASONS = ("timeout", "connection", "auth", "permission", "tls", "loading", "protocol", "other")


class UnknownTarget(LookupError):
    """``/probe`` named something that is neither a configured target nor an allowed address."""


def load_secrets(path: Path | None) -> dict[str, dict[str, str]]:
    """Read ``{target: password | {username, password}}``; keys are names or addresses."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
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


class CredentialsFileError(Exception):
    """The password file could not be read when a connection needed it."""


class PasswordFile(CredentialProvider):
    """Reads ``password_file`` at each new connection, so a rotated password needs no restart."""

    def __init__(self, username: str | None, path: Path) -> None:
        self.username = username
        self.path = path

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        try:
            password = self.path.read_text().rstrip("\r\n")
        except OSError as exc:
            raise CredentialsFileError(f"cannot read password_file {str(self.path)!r}: "
                                       f"{exc.strerror}") from None
        return (self.username, password) if self.username else (password,)


def make_client(target: RedisTarget, timeout: float,
                max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES) -> redis.Redis:
    """A client that fails fast: no retries, connect and each reply bounded by ``timeout``,
    and no reply over ``max_reply_bytes``."""
    kwargs: dict[str, Any] = {
        "parser_class": bounded_parser(max_reply_bytes),
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "retry_on_timeout": False,
        "health_check_interval": 0,
        # No client_name: CLIENT SETNAME would need one more ACL permission than +info +ping.
        "protocol": 2,
        # Reads of one target are coalesced; a few connections cover scrapes and /probe.
        "max_connections": 8,
    }
    if target.password_file is not None:
        kwargs["credential_provider"] = PasswordFile(target.username, target.password_file)
    else:
        kwargs["username"] = target.username
        kwargs["password"] = target.password.get_secret_value() if target.password else None
    if target.tls:
        kwargs.update(
            ssl_ca_certs=str(target.tls_ca_file) if target.tls_ca_file else None,
            ssl_certfile=str(target.tls_cert_file) if target.tls_cert_file else None,
            ssl_keyfile=str(target.tls_key_file) if target.tls_key_file else None,
            ssl_cert_reqs="none" if target.tls_insecure_skip_verify else "required",
            ssl_check_hostname=not target.tls_insecure_skip_verify,
        )
    client = redis.Redis.from_url(target.url, **kwargs)
    # Raw INFO bytes: the collector parses only what it exports (see redis_info).
    client.set_response_callback("INFO", lambda response, **_: response)
    return client


def classify(exc: BaseException) -> tuple[str, str]:
    """``(reason, message)`` for a failed Redis call; redis-py's messages hold no password."""
    message = f"{type(exc).__name__}: {exc}"
    text = str(exc)
    if isinstance(exc, CredentialsFileError):
        return "auth", message
    if isinstance(exc, ReplyTooLarge):
        return "protocol", message
    if isinstance(exc, redis.AuthenticationError | AuthenticationWrongNumberOfArgsError):
        return "auth", message
    if isinstance(exc, NoPermissionError):  # an ACL user without +info or +ping
        return "permission", message
    if isinstance(exc, BusyLoadingError):  # restarting and still loading its dataset
        return "loading", message
    if isinstance(exc, redis.ResponseError):
        if text.startswith(("NOAUTH", "WRONGPASS", "invalid password")):
            return "auth", message
        return "protocol", message
    if isinstance(exc, redis.TimeoutError | TimeoutError):
        return "timeout", message
    if isinstance(exc, ssl.SSLError) or isinstance(exc.__cause__ or exc.__context__, ssl.SSLError) \
            or "SSL" in text:
        return "tls", message
    if isinstance(exc, redis.ConnectionError | OSError):
        return "connection", message
    if isinstance(exc, ValueError | KeyError):  # an answer that is not what INFO should be
        return "protocol", message
    return "other", message


class ClientCache:
    """Reuses clients (and their connections) across ``/probe`` requests, bounded LRU."""

    def __init__(self, timeout: float, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
                 size: int = 128) -> None:
        self._timeout = timeout
        self._max_reply_bytes = max_reply_bytes
        self._size = size
        self._clients: OrderedDict[tuple[Any, ...], redis.Redis] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, target: RedisTarget) -> redis.Redis:
        """The cached client for exactly these connection settings, or a new one."""
        key = (
            target.url, target.username,
            target.password.get_secret_value() if target.password else None,
            target.password_file, target.tls_ca_file, target.tls_cert_file, target.tls_key_file,
            target.tls_insecure_skip_verify,
        )
        with self._lock:
            client = self._clients.pop(key, None)
            if client is None:
                client = make_client(target, self._timeout, self._max_reply_bytes)
            self._clients[key] = client
            while len(self._clients) > self._size:
                # Not closed: a read may still be using it; its idle sockets go with it.
                self._clients.popitem(last=False)
            return client

    def close(self) -> None:
        """Close every cached client."""
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
