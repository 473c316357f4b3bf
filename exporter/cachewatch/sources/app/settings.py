"""The application-cache source's settings: the push API's token, caps and instance expiry."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ...fields import Seconds, flag


class AppCacheSettings(BaseModel):
    """In-process caches pushed to ``POST /api/v1/caches`` (Caffeine- or Micrometer-shaped)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="accept pushes on `POST /api/v1/caches`")
    token: SecretStr | None = Field(
        default=None, description="bearer token that `POST /api/v1/caches` requires")
    instance_ttl: Seconds = Field(
        default=300.0, gt=0, le=86400,
        description="an instance silent this long is dropped with its per-instance series",
        json_schema_extra=flag(default="5m"))
    forget_after: Seconds = Field(
        default=7 * 86400.0, ge=60, le=366 * 86400,
        description="a silent instance's last values are kept this long: one that pushes again"
        " within it continues from them, later it is counted in full",
        json_schema_extra=flag(default="7d"))
    max_caches: int = Field(
        default=200, ge=1, description="distinct cache names; more fold into `other`")
    max_instances: int = Field(
        default=1000, ge=1, description="instances tracked at once; pushes from more get `429`")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024,
                                description="larger pushes get `413`")
