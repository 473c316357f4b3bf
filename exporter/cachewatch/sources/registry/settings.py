"""The registry source's settings: the notification receivers and the pull-through cache reader.

Two sections: ``registry`` receives pushed notifications (Distribution and Harbor), while
``registry_proxy`` reads pull-through caches' debug endpoints and is on only when given targets.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ...fields import Seconds, flag


class RegistrySettings(BaseModel):
    """Registry notification receivers: Distribution (``/webhooks/registry``) and Harbor."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True,
        description="accept notifications on `/webhooks/registry` and `/webhooks/harbor`")
    token: SecretStr | None = Field(
        default=None, description="bearer token the webhooks require (the registry's endpoint"
        " `headers` can send it)")
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024,
                                description="larger envelopes get `413`")
    max_events: int = Field(
        default=1000, ge=1, le=100_000, description="events in one Distribution envelope; an "
        "envelope with more gets `413` (a registry batches a few)")
    max_repositories: int = Field(
        default=500, ge=1, description="distinct `repository` values; more fold into `other`")
    max_registries: int = Field(default=20, ge=1, description="distinct `registry` values")
    tag_label: bool = Field(default=False,
                            description="add the tag to image pull/push series")
    max_harbor_resources: int = Field(
        default=1000, ge=1, description="artifacts in one Harbor event; an event with more is"
        " refused (`too_many_resources`) rather than counted as that many pulls")
    dedup_window: int = Field(default=100_000, ge=100,
                              description="event ids remembered to drop redeliveries")
    harbor_url: str | None = Field(
        default=None, description="poll this Harbor's replication executions (`GET"
        " /api/v2.0/replication/executions`), like `https://harbor.example.com`; then the API"
        " alone counts executions and artifacts (webhooks only say when one last succeeded)",
        json_schema_extra=flag(default="none"))
    harbor_name: str = Field(default="harbor",
                             description="the `registry` label of the polled executions")
    harbor_username: str | None = Field(
        default=None, description="robot account that polls (basic auth; read replication)",
        json_schema_extra=flag(default="none"))
    harbor_password: SecretStr | None = Field(
        default=None, description="its secret; prefer the env var",
        json_schema_extra=flag(default="none"))
    harbor_poll_interval: Seconds = Field(default=60.0, ge=5, le=3600,
                                          description="time between polls",
                                          json_schema_extra=flag(default="1m"))
    harbor_timeout: Seconds = Field(default=10.0, gt=0, le=120,
                                    description="deadline of one poll, all its requests",
                                    json_schema_extra=flag(default="10s"))

    @model_validator(mode="after")
    def _harbor_url(self) -> RegistrySettings:
        if self.harbor_url is not None:
            parts = urlsplit(self.harbor_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"harbor_url {self.harbor_url!r} is not an http(s) URL; write"
                                 " https://host")
        return self


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

    enabled: bool | None = Field(
        default=None, description="read the pull-through caches; on when targets are given",
        json_schema_extra=flag(default="on with targets"))
    targets: list[ProxyTarget] = Field(
        default_factory=list,
        description="pull-through caches' debug endpoints, `[NAME=]http://host:debugport`; the"
        " collector is on when any is given", json_schema_extra=flag(default="none"))
    timeout: Seconds = Field(default=2.0, gt=0, le=60, description="per-target deadline",
                             json_schema_extra=flag(default="2s"))

    @model_validator(mode="after")
    def _default_enabled(self) -> RegistryProxySettings:
        if self.enabled is None:
            self.enabled = bool(self.targets)
        return self
