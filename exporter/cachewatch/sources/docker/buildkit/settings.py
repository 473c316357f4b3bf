"""The ``buildkit`` section: which BuildKit daemons to follow, and how to reach them.

Off by default: it needs a daemon's socket and the optional ``cachewatch[buildkit]`` extra
(grpcio, protobuf), which nothing here imports: validating these settings costs no dependency.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ....fields import Seconds, flag, named_target, readable_file
from .address import Address, parse_address


class BuildkitTarget(BaseModel):
    """One daemon: a bare ``[NAME=]ADDR`` string wherever a target is expected (flags, env)."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(description="unix:///path or tcp://host:port, as buildkitd --addr")
    name: str | None = Field(
        default=None, max_length=128,
        description="The `target` label and the key its counted builds are kept under;"
        " defaults to the socket path or host:port.")
    tls_ca_file: Path | None = Field(
        default=None, description="CA to verify the daemon (buildctl --tlscacert); turns TLS on.")
    tls_cert_file: Path | None = Field(
        default=None, description="Client certificate (buildctl --tlscert); turns TLS on.")
    tls_key_file: Path | None = Field(default=None, description="Client key (buildctl --tlskey).")
    tls_server_name: str | None = Field(
        default=None, description="Name the daemon's certificate is checked against, when it is"
        " not the address' host (buildctl --tlsservername).")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        """Allow a bare ``[NAME=]ADDR`` string wherever a target is expected (flags, env)."""
        return named_target(data, "address")

    @model_validator(mode="after")
    def _normalise(self) -> BuildkitTarget:
        parsed = parse_address(self.address)  # AddressError is a ValueError: a settings error
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together; set both or neither")
        if self.tls and parsed.kind != "tcp":
            raise ValueError("TLS settings need a tcp://host:port address")
        if not self.name:
            self.name = parsed.label
        return self

    _files_readable = field_validator("tls_ca_file", "tls_cert_file", "tls_key_file")(
        readable_file)

    @property
    def parsed(self) -> Address:
        return parse_address(self.address)

    @property
    def tls(self) -> bool:
        return self.tls_ca_file is not None or self.tls_cert_file is not None

    @property
    def label(self) -> str:
        return self.name or self.parsed.label


class BuildkitSettings(BaseModel):
    """BuildKit's own build history (``Control/ListenBuildHistory``, BuildKit v0.11+)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=False, description="follow BuildKit daemons' build history (needs their socket"
        " and `pip install 'cachewatch[buildkit]'`)")
    targets: list[BuildkitTarget] = Field(
        default_factory=list, max_length=100,
        description="daemons whose history is followed; a buildx `docker-container` builder runs"
        " one ([A buildx builder](sources/docker-builds.md#a-buildx-builder))",
        json_schema_extra=flag("--buildkit-target", default="[]", metavar="[NAME=]ADDR",
                               help="BuildKit daemon to follow, [NAME=]ADDR (unix:///path,"
                               " tcp://host:port)"))
    timeout: Seconds = Field(
        default=10.0, gt=0, le=300, json_schema_extra=flag(default="10s"),
        description="deadline for one call to a daemon: the backlog, or one build's logs blob")
    reconnect_max: Seconds = Field(
        default=30.0, ge=0.1, le=3600, json_schema_extra=flag(default="30s"),
        description="longest wait between reconnects to a daemon that is down (backoff from"
        " 0.5s, doubling)")
    max_images: int = Field(
        default=200, ge=1,
        description="distinct `image` (and `target`) label values; more fold into `other`")
    max_cache_busters: int = Field(
        default=500, ge=1,
        description="distinct (image, instruction) pairs; more fold into `other`")

    @model_validator(mode="after")
    def _targets_when_enabled(self) -> BuildkitSettings:
        if self.enabled and not self.targets:
            raise ValueError("the buildkit collector needs a daemon: give --buildkit-target"
                             " NAME=unix:///run/buildkit/buildkitd.sock (or tcp://host:port)")
        names = [target.label for target in self.targets]
        if len(set(names)) != len(names):
            raise ValueError("two buildkit targets have the same name; name them apart with"
                             " NAME=ADDR")
        return self
