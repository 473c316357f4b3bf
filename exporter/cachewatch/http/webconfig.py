"""The web configuration file (``--web.config.file``), in the Prometheus exporter-toolkit format.

The same file a user writes for node_exporter works here: ``tls_server_config`` (certificate and
key as files or inline, client certificate authentication, TLS versions, cipher suites),
``http_server_config.headers``, ``basic_auth_users`` (bcrypt hashes), ``rate_limit`` and
``auth_excluded_paths``. Unknown keys are refused, as the toolkit's strict parsing refuses them.
Where Python's TLS cannot do what Go's does, the file is refused with the reason
(``RequestClientCert`` and ``RequireAnyClientCert`` accept unverified certificates) or the
setting is reported and left out (``curve_preferences``: OpenSSL's defaults apply).
Relative paths are relative to the file's folder, as in the toolkit.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ..fields import Seconds, yaml_error
from ..fields import safe_yaml as _safe_yaml

log = logging.getLogger("cachewatch.web")

ClientAuth = Literal["", "NoClientCert", "RequestClientCert", "RequireAnyClientCert",
                     "RequireClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
             "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_VERIFY = {"": ssl.CERT_NONE, "NoClientCert": ssl.CERT_NONE,
           "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
           "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
# Go's names (crypto/tls.CipherSuites, the ones the toolkit accepts) -> OpenSSL's. TLS 1.3
# suites are not configurable in Go either.
CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# The headers the toolkit lets a user set, and their allowed values (None: any value).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None, "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"), "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
_BCRYPT = re.compile(r"^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$")


class WebConfigError(ValueError):
    """The web configuration file cannot be used; the message says where and why."""


class TLSServerConfig(BaseModel):
    """``tls_server_config``: as in the toolkit; paths relative to the file's folder."""

    model_config = ConfigDict(extra="forbid")

    cert: str | None = None
    key: SecretStr | None = None
    client_ca: str | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    client_auth_type: ClientAuth = ""
    client_ca_file: Path | None = None
    client_allowed_sans: list[str] | None = None
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName = "TLS13"
    cipher_suites: list[str] = Field(default_factory=list)
    prefer_server_cipher_suites: bool = True
    curve_preferences: list[Literal["CurveP256", "CurveP384", "CurveP521", "X25519"]] = Field(
        default_factory=list)

    @field_validator("cipher_suites")
    @classmethod
    def _known_ciphers(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in CIPHERS]
        if unknown:
            raise ValueError(f"unknown cipher suite {unknown[0]!r}; known: {', '.join(CIPHERS)}")
        return names

    @property
    def enabled(self) -> bool:
        """Whether any TLS setting is given (the toolkit's ``IsEnabled``)."""
        return any((self.cert, self.key, self.client_ca, self.cert_file, self.key_file,
                    self.client_ca_file, self.client_auth_type))


class HTTPServerConfig(BaseModel):
    """``http_server_config``: ``http2`` is accepted (uvicorn serves HTTP/1.1) and headers."""

    model_config = ConfigDict(extra="forbid")

    http2: bool = True
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _allowed_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if name not in HEADERS:
                raise ValueError(f"HTTP header {name!r} can not be configured; allowed: "
                                 f"{', '.join(HEADERS)}")
            allowed = HEADERS[name]
            if allowed is not None and value not in allowed:
                raise ValueError(f"invalid value for {name}: expected one of {list(allowed)}, "
                                 f"got {value!r}")
        return headers


class RateLimit(BaseModel):
    """``rate_limit``: a token bucket over every request; interval 0 turns it off."""

    model_config = ConfigDict(extra="forbid")

    interval: Seconds = 0.0
    burst: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _burst_with_interval(self) -> RateLimit:
        if self.interval > 0 and self.burst < 1:
            raise ValueError("burst must be at least 1 when interval is set (0 would refuse "
                             "every request)")
        return self


class WebConfigFile(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    tls_server_config: TLSServerConfig = Field(default_factory=TLSServerConfig)
    http_server_config: HTTPServerConfig = Field(default_factory=HTTPServerConfig)
    basic_auth_users: dict[str, SecretStr] = Field(default_factory=dict)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    auth_excluded_paths: list[str] = Field(default_factory=list)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, users: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for user, hashed in users.items():
            if not _BCRYPT.match(hashed.get_secret_value()):
                raise ValueError(f"the password of user {user!r} is not a bcrypt hash; make one "
                                 "with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`")
        return users


@dataclass(frozen=True)
class WebConfig:
    """A loaded, checked web configuration; ``tls`` is ``None`` for plain HTTP."""

    path: Path | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: tuple[tuple[bytes, bytes], ...] = ()
    rate_interval: float = 0.0
    rate_burst: int = 0
    excluded_paths: frozenset[str] = frozenset()
    tls: TLSServerConfig | None = None
    watched: tuple[Path, ...] = ()

    def context(self) -> ssl.SSLContext | None:
        """A server TLS context, or ``None`` without TLS."""
        return None if self.tls is None else server_context(self.tls)

    def stamp(self) -> tuple[tuple[str, int, int], ...]:
        """Size and mtime of the file and the files it names: changes when any is rewritten."""
        out = []
        for path in self.watched:
            try:
                stat = path.stat()
                out.append((str(path), stat.st_mtime_ns, stat.st_size))
            except OSError:
                out.append((str(path), -1, -1))
        return tuple(out)


def load(path: Path | None, allow_empty: bool = True) -> WebConfig:
    """Read and check the file; ``WebConfig()`` (plain HTTP, no auth) for ``None``.

    ``allow_empty=False`` refuses a file with no settings: a file that turns empty while the
    exporter runs is being rewritten or was truncated by mistake, and taking it would turn
    basic auth and TLS settings off without a word."""
    if path is None:
        return WebConfig()
    where = f"web.config_file {str(path)!r}"
    import yaml  # only with a web config file: most exporters never load PyYAML

    try:
        data = _safe_yaml(path.read_text())
        if data is None and not allow_empty:
            raise WebConfigError(f"{where} is empty; an empty file would turn auth off: "
                                 "restart to take it on purpose")
        data = data or {}
    except OSError as exc:
        raise WebConfigError(f"{where} cannot be read: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        # Position only: the parser's text quotes the line, which may hold a key or a hash.
        raise WebConfigError(f"{where} is not valid YAML: {yaml_error(exc)}") from None
    if not isinstance(data, dict):
        raise WebConfigError(f"{where} must hold a mapping (tls_server_config, "
                             "basic_auth_users, ...)")
    try:
        parsed = WebConfigFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        dotted = ".".join(str(p) for p in first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown setting (the exporter-toolkit web configuration format)"
        raise WebConfigError(f"{where}: {dotted}: {message}") from None
    tls = _resolve(parsed.tls_server_config, path.parent) if \
        parsed.tls_server_config.enabled else None
    if tls is not None:
        try:
            server_context(tls)
        except (ValueError, OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"{where}: tls_server_config: {exc}") from None
        if tls.curve_preferences:
            log.warning("tls_server_config.curve_preferences is not applied: Python's TLS "
                        "cannot set a list of curves; OpenSSL's defaults are used")
    return WebConfig(
        path=path,
        users={u: h.get_secret_value().encode() for u, h in parsed.basic_auth_users.items()},
        headers=tuple((k.lower().encode(), v.encode())
                      for k, v in parsed.http_server_config.headers.items()),
        rate_interval=parsed.rate_limit.interval, rate_burst=parsed.rate_limit.burst,
        excluded_paths=frozenset(parsed.auth_excluded_paths), tls=tls,
        watched=(path, *(p for p in (tls.cert_file, tls.key_file, tls.client_ca_file)
                         if p is not None)) if tls else (path,))


def _resolve(tls: TLSServerConfig, folder: Path) -> TLSServerConfig:
    """Relative paths are relative to the web config file's folder (as in the toolkit)."""
    return tls.model_copy(update={
        name: folder / value for name in ("cert_file", "key_file", "client_ca_file")
        if (value := getattr(tls, name)) is not None and not value.is_absolute()})


def server_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """A TLS server context from ``tls_server_config``; ``ValueError`` says what is wrong."""
    if not (tls.cert or tls.cert_file):
        raise ValueError("missing one of cert or cert_file")
    if not (tls.key or tls.key_file):
        raise ValueError("missing one of key or key_file")
    if tls.client_auth_type in ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert"):
        raise ValueError(
            f"client_auth_type {tls.client_auth_type} is not supported: it accepts client "
            "certificates without verifying them, which Python's TLS cannot do; use "
            "RequireAndVerifyClientCert with client_ca_file")
    has_ca = bool(tls.client_ca or tls.client_ca_file)
    verify = _VERIFY[tls.client_auth_type]
    if has_ca and verify == ssl.CERT_NONE:
        raise ValueError("client CAs have been configured without a client_auth_type")
    if verify != ssl.CERT_NONE and not has_ca:
        raise ValueError(f"client_auth_type {tls.client_auth_type} needs client_ca_file")
    if tls.client_allowed_sans is not None and verify != ssl.CERT_REQUIRED:
        raise ValueError("client_allowed_sans requires client_auth_type "
                         "RequireAndVerifyClientCert")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[tls.min_version]
    context.maximum_version = _VERSIONS[tls.max_version]
    if tls.cipher_suites:
        context.set_ciphers(":".join(CIPHERS[name] for name in tls.cipher_suites))
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    load_certificate(context, tls)
    if has_ca:
        context.verify_mode = verify
        if tls.client_ca_file is not None:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        else:
            context.load_verify_locations(cadata=tls.client_ca)
    return context


def load_certificate(context: ssl.SSLContext, tls: TLSServerConfig) -> None:
    """(Re)load the certificate and key into ``context``: new handshakes use them."""
    if tls.cert_file is not None and tls.key_file is not None:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        return
    # Inline PEM: OpenSSL loads chains from files only; a private file, removed at once.
    with tempfile.TemporaryDirectory(prefix="cachewatch-tls-") as folder:
        cert = tls.cert_file or _private_file(Path(folder, "cert.pem"), tls.cert or "")
        key = tls.key_file or _private_file(
            Path(folder, "key.pem"), tls.key.get_secret_value() if tls.key else "")
        context.load_cert_chain(str(cert), str(key))


def _private_file(path: Path, content: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(content)
    return path


def peer_allowed(peer: dict | None, allowed: list[str]) -> bool:
    """Whether a verified client certificate has a SAN in ``client_allowed_sans``
    (DNS, IP, e-mail or URI, exact match; IP addresses compared as addresses)."""
    if not peer:
        return False
    wanted = {_normal_san(value) for value in allowed}
    return any(_normal_san(value) in wanted
               for _kind, value in peer.get("subjectAltName", ()))


def _normal_san(value: str) -> str:
    text = value.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text
